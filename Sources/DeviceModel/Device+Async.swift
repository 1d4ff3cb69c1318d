import KernelRuntime
import RCU

extension Device {
    /// Binds `driver`, suspended, as the blocking `bind(_:)` does: its `probe` runs with
    /// proof of boundness, and if it throws, what it registered is released. The probe runs
    /// on a runtime worker thread (it is process-context code that may sleep: a request_irq,
    /// a mutex), so no thread of the concurrency pool waits. A cancelled task's call still
    /// binds (or fails) and returns normally.
    ///
    /// Returns `Void`, once the driver is bound.
    ///
    /// - Throws: As the blocking `bind(_:)`: `alreadyBound`, `resourcesPresent`,
    ///   `probeFailed`, `atomicContext`. The device is unchanged.
    public func bind(_ driver: some Driver, file: StaticString = #fileID, line: UInt = #line) async throws(DeviceError) {
        try mightSleep("Device.bind(_:)", file: file, line: line)
        try await BlockingPool.shared.run { () throws(DeviceError) in try self.bind(driver, file: file, line: line) }
    }

    /// Unbinds the driver, suspended, with every guarantee of the blocking
    /// `unbind(mode:)`: `withBound` holders on other threads are waited for, `remove` runs,
    /// then every resource is released newest first, every IRQ the driver requested is
    /// freed before this returns, and a batched unbind waits ONE grace period. In async
    /// code `try await device.unbind()` resolves here.
    ///
    /// No thread of the concurrency pool waits: the unbind runs on a runtime worker thread
    /// (the driver's `remove` and the resources' teardowns are process-context code that may
    /// sleep), and its grace periods are shared with every other waiter through the
    /// grace-period thread. The report counts them as the blocking unbind does (batched: 1).
    ///
    /// Cancelling the task cancels nothing: a cancelled task's call still unbinds, waits
    /// for the release to finish and returns its report normally; the release is never left
    /// half done.
    ///
    /// - Returns: `UnbindReport`: what was released and how many grace periods it took.
    /// - Throws: As the blocking `unbind(mode:)`: `notBound`, `wouldDeadlock`,
    ///   `atomicContext`. The device is unchanged.
    @discardableResult
    public func unbind(
        mode: UnbindMode = .batched, file: StaticString = #fileID, line: UInt = #line
    ) async throws(DeviceError) -> UnbindReport {
        try mightSleep("Device.unbind(mode:)", file: file, line: line)
        let start = monotonicNanoseconds()
        return try await BlockingPool.shared.run { () throws(DeviceError) -> UnbindReport in
            try self.unbindNow(mode: mode, start: start, file: file, line: line) { GracePeriodThread.shared.waitForGracePeriod() }
        }
    }
}
