/// A release action registered with `Device.addAction` (`devm_add_action`).
///
/// It runs once: at unbind (newest first, with the device's other resources), when a probe
/// fails, or on `release()`. Dropping this handle does not run or cancel it.
public final class DeviceAction: Sendable {
    let node: ActionNode

    init(node: ActionNode) { self.node = node }

    /// The name the action was registered under.
    public var name: String { node.name }

    /// Removes the action without running it (`devm_remove_action`). Returns false if it
    /// was already cancelled, released, or taken by an unbind; then, if another thread is
    /// running it, waits until it has finished. Called from this device's own unbind (a
    /// release action or a value's teardown cancelling an older action) it returns false
    /// at once, and the action still runs later in that unbind, as in the kernel.
    ///
    /// - Throws: `atomicContext` in atomic context (it may wait); nothing was changed.
    @available(*, noasync, message: "may wait for a concurrent unbind")
    @discardableResult
    public func cancel(file: StaticString = #fileID, line: UInt = #line) throws(DeviceError) -> Bool {
        try node.device.mightSleep("DeviceAction.cancel()", file: file, line: line)
        if node.device.cancel(node) { return true }
        node.waitUntilDropped()
        return false
    }

    /// Removes the action and runs it now (`devm_release_action`). Returns false if it was
    /// already cancelled, released, or taken by an unbind, after waiting for that run to
    /// finish (at once from this device's own unbind, as for `cancel()`).
    ///
    /// - Throws: `atomicContext` in atomic context (the action and the wait may sleep);
    ///   nothing was changed.
    @available(*, noasync, message: "may wait for a concurrent unbind")
    @discardableResult
    public func release(file: StaticString = #fileID, line: UInt = #line) throws(DeviceError) -> Bool {
        try node.device.mightSleep("DeviceAction.release()", file: file, line: line)
        if node.device.removeAndRelease(node) { return true }
        node.waitUntilDropped()
        return false
    }
}
