import KernelRuntime
import RCU
import Synchronization

/// A device that a driver binds to: the kernel's `struct device` with its devres list.
///
/// `bind` runs the driver's `probe`; `unbind` runs `remove`, then releases every resource
/// the driver registered (Devres values, release actions, IRQ registrations) newest first,
/// in one of two modes (`UnbindMode`). Proof that the device is bound (`Device.Bound`) is
/// handed, borrowed, to `probe`, `remove`, `withBound` and IRQ handlers, so it cannot
/// outlive the binding.
///
/// Reports (a sleeping call in atomic context, a Devres read after its release) go to the
/// device's `log`: the device's own calls report there, and `probe`, `remove`, release
/// actions and `withBound` bodies run with it as the thread's current log, so the driver's
/// own sleeping calls (a mutex, a revoke) report there too.
///
/// - Note: All methods are thread-safe.
public final class Device: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): every `var` is only touched with `queue.lock` held.

    /// The device's name (`dev_name`).
    public let name: String
    /// Where this device's reports and messages go.
    public let log: KernelLog
    /// The device lock and the wait queue for releases and `withBound` holders.
    package let queue = WaitQueue()
    package var lock: Lock { queue.lock }
    /// Threads waiting in `DevresNode.waitUntilDropped()`.
    package let dropWaiters = Atomic<Int>(0)

    package enum State: Sendable, Equatable {
        case unbound, probing, bound, removing, releasing
    }

    private var state = State.unbound
    private var driver: (any Driver)?
    /// Oldest first; `tail` is the newest.
    private var head: DevresNode?
    private unowned var tail: DevresNode?
    private var count = 0
    /// Threads inside `withBound`, by tid, with their nesting depth.
    private var holders: [Int32: Int] = [:]
    /// The thread running probe, remove or the release of resources.
    private var callbackThread: Int32 = 0
    /// Resources unlinked by a Devres drop (or `DeviceAction.release()`) whose release has
    /// not finished yet, counted per dropping thread. Unbind waits for those of other
    /// threads, so it never returns while a value of the device is still being dropped
    /// elsewhere; a drop further up its own stack (a release action or a value's teardown
    /// that unbinds the device) it does not wait for: that would wait for itself.
    private var dropsInFlight: [Int32: Int] = [:]

    /// A device named `name`, reporting to `log`. By default that is a fresh log that
    /// records only: read it with `log`, or pass `KernelLog(name:echo: true)` to also see
    /// its lines on standard error.
    public init(name: String, log: KernelLog? = nil) {
        self.name = name
        self.log = log ?? KernelLog(name: name)
    }

    /// Whether a driver is bound and the device is not being unbound.
    public var isBound: Bool { lock.withLock { state == .bound } }

    /// The bound driver's name, if any.
    public var driverName: String? {
        // The driver's `name` is its code: called outside the device lock.
        lock.withLock { driver }?.name
    }

    /// Resources on the device's list now.
    public var resourceCount: Int { lock.withLock { count } }

    // MARK: - Proof of boundness

    /// Proof that a device is bound: the Swift counterpart of `&Device<Bound>`.
    ///
    /// Handed borrowed to `probe`, `remove`, `withBound` bodies and IRQ handlers. It is
    /// `~Copyable` and never handed over owned, so it cannot be stored or escape the call
    /// that received it.
    public struct Bound: ~Copyable {
        /// The device this proves bound.
        public let device: Device

        /// For the layers that hold a device bound by construction (an IRQ handler runs
        /// only between request_irq and free_irq, both within the binding).
        package init(_ device: Device) { self.device = device }
    }

    /// Runs `body` with proof that the device is bound, holding off `unbind` until it
    /// returns. Never sleeps: if the device is not bound (or is being unbound) it throws
    /// `DeviceError.notBound` at once. Calling `unbind` on this device inside `body` is
    /// refused (`wouldDeadlock`). Errors `body` throws propagate unchanged.
    public func withBound<R>(_ body: (borrowing Bound) throws -> R) throws -> R {
        let tid = ThreadState.tid
        try lock.withLock { () throws(DeviceError) in
            guard state == .bound || (state == .removing && holders[tid] != nil) else {
                throw .notBound(device: name, operation: "withBound")
            }
            holders[tid, default: 0] += 1
        }
        defer {
            lock.withLock {
                holders[tid]! -= 1
                if holders[tid] == 0 { holders[tid] = nil }
            }
            queue.wakeAll()
        }
        // Reports made in `body` (a sleeping call, a released Devres) go to this device's log.
        return try KernelLog.withCurrent(log) { try body(Bound(self)) }
    }

    /// The checker's entry test for this device's sleeping calls (and its resources'):
    /// reported to the device's log and refused as `atomicContext` in atomic context.
    func mightSleep(_ function: String, file: StaticString, line: UInt) throws(DeviceError) {
        do {
            try AtomicContext.mightSleep(function, log: log, file: file, line: line)
        } catch { throw .atomicContext(error) }
    }

    // MARK: - Bind and unbind

    /// Binds `driver`: runs its `probe` with proof of boundness. If `probe` throws, the
    /// resources it registered are released (newest first) and the device stays unbound.
    ///
    /// - Throws: `alreadyBound`, `resourcesPresent`, `probeFailed`, or `atomicContext` in
    ///   atomic context. The device is unchanged.
    @available(*, noasync, message: "runs the driver's probe, which may sleep")
    public func bind(_ driver: some Driver, file: StaticString = #fileID, line: UInt = #line) throws(DeviceError) {
        try mightSleep("Device.bind(_:)", file: file, line: line)
        let tid = ThreadState.tid
        var other: (any Driver)?
        let claimed = try lock.withLock { () throws(DeviceError) -> Bool in
            guard state == .unbound else {
                other = self.driver
                return false
            }
            guard head == nil else {
                log.printk("\(name): Resources present before probing")
                throw .resourcesPresent(device: name)
            }
            state = .probing
            self.driver = driver
            callbackThread = tid
            return true
        }
        // The other driver's `name` is its code: called outside the device lock.
        guard claimed else { throw .alreadyBound(device: name, driver: other?.name ?? "(binding)") }
        do {
            try KernelLog.withCurrent(log) { try driver.probe(Bound(self)) }
        } catch {
            _ = KernelLog.withCurrent(log) { releaseAll(mode: .batched) }
            lock.withLock {
                state = .unbound
                self.driver = nil
                callbackThread = 0
            }
            log.printk("\(name): probe with driver \(driver.name) failed with error \(error)")
            throw .probeFailed(device: name, driver: driver.name, reason: "\(error)")
        }
        lock.withLock {
            state = .bound
            callbackThread = 0
        }
    }

    /// Unbinds the driver: waits for `withBound` holders on other threads, runs `remove`,
    /// then releases every resource, newest first (`mode` says how RCU Devres are
    /// released).
    ///
    /// When it returns, every Devres of the device is revoked and dropped, every release
    /// action has run, and every IRQ the driver requested is freed, even if the Devres or
    /// Registration objects are still referenced elsewhere.
    ///
    /// - Returns: What was released and how many grace periods it took.
    /// - Throws: `notBound` (unbind of an unbound device), `wouldDeadlock` (from inside
    ///   `withBound` or a driver callback of this device), or `atomicContext`. The device is
    ///   unchanged.
    @available(*, noasync, message: "waits for grace periods and for running handlers")
    @discardableResult
    public func unbind(
        mode: UnbindMode = .batched, file: StaticString = #fileID, line: UInt = #line
    ) throws(DeviceError) -> UnbindReport {
        try mightSleep("Device.unbind(mode:)", file: file, line: line)
        let start = monotonicNanoseconds()
        let gracePeriods = RCU.gracePeriodsWaitedByCurrentThread
        let tid = ThreadState.tid
        let driver = try lock.withLock { () throws(DeviceError) -> any Driver in
            if holders[tid] != nil {
                throw .wouldDeadlock(device: name, reason: "unbind inside withBound of the same device")
            }
            guard state == .bound else {
                if callbackThread == tid {
                    throw .wouldDeadlock(device: name, reason: "unbind from the device's own probe, remove or release")
                }
                throw .notBound(device: name, operation: "unbind")
            }
            state = .removing
            callbackThread = tid
            _ = queue.waitLocked { holders.isEmpty }
            return self.driver!
        }
        // The driver's remove and the release of its resources report to this device's log.
        let released = KernelLog.withCurrent(log) {
            driver.remove(Bound(self))
            return releaseAll(mode: mode)
        }
        lock.withLock {
            state = .unbound
            self.driver = nil
            callbackThread = 0
        }
        return UnbindReport(
            device: name, mode: mode, released: released,
            gracePeriods: RCU.gracePeriodsWaitedByCurrentThread &- gracePeriods,
            seconds: Double(monotonicNanoseconds() &- start) / 1e9)
    }

    /// Takes the whole list (so a concurrent Devres drop finds its node gone and waits for
    /// the claim), then releases newest first.
    private func releaseAll(mode: UnbindMode) -> Int {
        let nodes = lock.withLock { () -> [DevresNode] in
            state = .releasing
            return takeList()
        }
        switch mode {
        case .batched:
            var flipped = false
            for node in nodes where node.needsGracePeriod {
                if node.unpublish() { flipped = true }
            }
            if flipped { RCU.synchronizeUnchecked() }
            for node in nodes { node.releaseOrWait() }
        case .perObject:
            for node in nodes {
                if node.needsGracePeriod, node.unpublish() { RCU.synchronizeUnchecked() }
                node.releaseOrWait()
            }
        }
        // Drops that unlinked their resource just before we took the list (on other threads:
        // one on this thread is the caller, further up the stack).
        let tid = ThreadState.tid
        _ = queue.wait { dropsInFlight.keys.allSatisfy { $0 == tid } }
        return nodes.count
    }

    // MARK: - The resource list

    /// Appends `node` if the device is in a state that accepts resources.
    package func add(_ node: DevresNode, operation: String) throws(DeviceError) {
        try lock.withLock { () throws(DeviceError) in
            switch state {
            case .probing, .bound, .removing: break
            case .unbound, .releasing: throw .notBound(device: name, operation: operation)
            }
            node.onList = true
            node.prev = tail
            if let tail { tail.next = node } else { head = node }
            tail = node
            count += 1
        }
    }

    /// Unlinks `node` without releasing it, if it is still on the list, and marks it
    /// finished. Returns false if an unbind took it or it was released or cancelled.
    package func cancel(_ node: DevresNode) -> Bool {
        let cancelled = lock.withLock { () -> Bool in
            guard node.onList else { return false }
            unlink(node)
            node.markCancelledLocked()
            return true
        }
        if cancelled && dropWaiters.load(ordering: .sequentiallyConsistent) > 0 { queue.wakeAll() }
        return cancelled
    }

    /// Whether this device's resources are being released on thread `tid` (by its unbind or
    /// a failed probe).
    package func isReleasing(on tid: Int32) -> Bool {
        lock.withLock { state == .releasing && callbackThread == tid }
    }

    /// Unlinks `node` and, if that succeeded, releases it, with an unbind that starts
    /// meanwhile on another thread waiting for the release to finish. Returns false if an
    /// unbind took it.
    package func removeAndRelease(_ node: DevresNode) -> Bool {
        let tid = ThreadState.tid
        let removed = lock.withLock { () -> Bool in
            guard node.onList else { return false }
            unlink(node)
            dropsInFlight[tid, default: 0] += 1
            return true
        }
        guard removed else { return false }
        // The release runs driver code (an action, a value's teardown), which may unbind
        // this device: that unbind does not wait for this drop.
        node.claimAndDrop()
        lock.withLock {
            dropsInFlight[tid]! -= 1
            if dropsInFlight[tid] == 0 { dropsInFlight[tid] = nil }
        }
        queue.wakeAll()
        return true
    }

    private func unlink(_ node: DevresNode) {
        if let prev = node.prev { prev.next = node.next } else { head = node.next }
        if let next = node.next { next.prev = node.prev } else { tail = node.prev }
        node.next = nil
        node.prev = nil
        node.onList = false
        count -= 1
    }

    /// Empties the list, newest first, breaking every link (so a long list is never
    /// released recursively).
    private func takeList() -> [DevresNode] {
        var nodes: [DevresNode] = []
        nodes.reserveCapacity(count)
        var node = tail
        while let current = node {
            node = current.prev
            current.onList = false
            current.next = nil
            current.prev = nil
            nodes.append(current)
        }
        head = nil
        tail = nil
        count = 0
        return nodes
    }

    // MARK: - Release actions

    /// Registers `action` to run when the device is unbound, newest first with the other
    /// resources (`devm_add_action`). Runs at once, and throws, if the device is not in a
    /// state that accepts resources, as `devm_add_action_or_reset` does.
    @discardableResult
    public func addAction(
        _ bound: borrowing Bound, name: String, file: StaticString = #fileID, line: UInt = #line,
        _ action: @escaping @Sendable () -> Void
    ) throws(DeviceError) -> DeviceAction {
        guard bound.device === self else { throw .wrongDevice(expected: self.name, given: bound.device.name) }
        // It may run the action at once (below), and the action may sleep.
        try mightSleep("Device.addAction(_:name:_:)", file: file, line: line)
        let node = ActionNode(device: self, name: name, action: action)
        do {
            try add(node, operation: "addAction")
        } catch {
            node.claimAndDrop()
            throw error
        }
        return DeviceAction(node: node)
    }
}

extension Device: CustomStringConvertible {
    public var description: String { "Device(\(name))" }
}
