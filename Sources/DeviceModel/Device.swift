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
/// A device may also carry platform resources (`Device.Resource`), as a platform device
/// carries its IRQ lines and memory ranges: given at creation, looked up by a driver.
///
/// Reports (a sleeping call in atomic context, a Devres read after its release) go to the
/// device's `log`: the device's own calls report there, and `probe`, `remove`, release
/// actions and `withBound` bodies run with it as the thread's current log, so the driver's
/// own sleeping calls (a mutex, a revoke) report there too.
///
/// The file holds the bind state machine; the devres list is in `Device+ResourceList.swift`
/// and unbind's release algorithm in `Unbind.swift`.
///
/// - Note: All methods are thread-safe.
public final class Device: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): every `var` is only touched with `lock` held.

    /// The device's name (`dev_name`).
    public let name: String
    /// Where this device's reports and messages go.
    public let log: KernelLog
    /// The faults injected during this device's probe, remove, unbind and `withBound`
    /// bodies (nil: the process's, `FaultInjection.process`).
    public let faults: Faults?
    /// The platform resources the device was created with, in order.
    public let resources: [Resource]
    /// The device lock (`device_lock` and the devres lock in one), and the condition that
    /// releases and `withBound` holders wait on.
    package let lock = ConditionLock()
    /// Threads waiting in `DevresNode.waitUntilDropped()`.
    package let dropWaiters = Atomic<Int>(0)

    /// Where the device is in its bind/unbind cycle.
    package enum State: Sendable, Equatable {
        case unbound, probing, bound, removing, releasing
    }

    var state = State.unbound
    var driver: (any Driver)?
    /// The devres list, oldest first; `tail` is the newest.
    var head: DevresNode?
    unowned var tail: DevresNode?
    var count = 0
    /// How unbind cancels managed work (`addWork`): `disableWorkSync`, unless a test asks for
    /// the broken `cancelWorkSync` to show what it lets through.
    var managedWorkCancelMode = ManagedWorkCancel.disableSync
    /// Threads inside `withBound`, by tid, with their nesting depth.
    var holders: [Int32: Int] = [:]
    /// The thread running probe, remove or the release of resources.
    var callbackThread: Int32 = 0
    /// Resources unlinked by a Devres drop (or `DeviceAction.release()`) whose release has
    /// not finished yet, counted per dropping thread. Unbind waits for those of other
    /// threads, so it never returns while a value of the device is still being dropped
    /// elsewhere; a drop further up its own stack (a release action or a value's teardown
    /// that unbinds the device) it does not wait for: that would wait for itself.
    var dropsInFlight: [Int32: Int] = [:]
    /// The sequence number of the newest resource added (`DevresNode.sequence`).
    var nextSequence: UInt32 = 0
    /// `noteUnmanaged` checks, run and cleared after the next release.
    var leakChecks: [LeakCheck] = []
    /// The lock validator's pseudo-lock for "inside this device's `withBound` or
    /// `access(_:)` bodies": held (as a lock that never waits) while they run, and waited
    /// for by `unbind`, so an unbind under a lock that such a body takes is reported as a
    /// circular dependency. Its class is the device's creation site, as a lock's is.
    package let boundMap: LockdepMap

    /// A number no other device of the process has (identities that outlive the device:
    /// a managed work item remembers its device by it).
    package let serial = Device.serials.add(1, ordering: .relaxed).newValue
    private static let serials = Atomic<UInt64>(0)

    /// A device named `name` with platform `resources`, reporting to `log`. By default that
    /// is a fresh log that records only: read it with `log`, or pass
    /// `KernelLog(name:echo: true)` to also see its lines on standard error. `faults`
    /// applies to what the device's driver and its release do.
    public init(
        name: String, resources: [Resource] = [], log: KernelLog? = nil, faults: Faults? = nil,
        file: StaticString = #fileID, line: UInt = #line
    ) {
        self.name = name
        self.resources = resources
        self.log = log ?? KernelLog(name: name)
        self.faults = faults
        FaultInjection.scopeCreated(faults)
        self.log.noteFaults(faults)
        boundMap = LockdepMap(kind: "Device.bound", type: .pseudo, file: file, line: line)
    }

    /// Whether a driver is bound and the device is not being unbound.
    public var isBound: Bool { lock.withLock { state == .bound } }

    /// The bound driver's name, if any.
    public var driverName: String? {
        // The driver's `name` is its code: called outside the device lock.
        lock.withLock { driver }?.name
    }

    /// Resources on the device's devres list now.
    public var resourceCount: Int { lock.withLock { count } }

    // MARK: - Proof of boundness

    /// Proof that a device is bound: the Swift counterpart of `&Device<Bound>`.
    ///
    /// Handed borrowed to `probe`, `remove`, `withBound` bodies and IRQ handlers. It is
    /// `~Copyable` and never handed over owned, so it cannot be stored or escape the call
    /// that received it. Making one costs nothing: it holds its device unretained (whoever
    /// hands it out keeps the device alive for longer).
    public struct Bound: ~Copyable {
        // SAFETY: every creator holds a strong reference to the device for longer than the
        // borrowed proof lives (probe, remove and withBound run on `self`; an IRQ handler's
        // closure captures its device).
        @usableFromInline unowned(unsafe) let bound: Device

        /// The device this proves bound.
        @inlinable public var device: Device { unsafe bound }

        /// For the layers that hold a device bound by construction (an IRQ handler runs
        /// only between request_irq and free_irq, both within the binding). The caller
        /// keeps `device` alive while the proof lives.
        @inlinable package init(_ device: Device) { unsafe bound = device }
    }

    /// Runs `body` with proof that the device is bound, holding off `unbind` until it
    /// returns. Never sleeps: if the device is not bound (or is being unbound) it throws
    /// `DeviceError.notBound` at once. Calling `unbind` on this device inside `body` is
    /// refused (`wouldDeadlock`). Errors `body` throws propagate unchanged. For the lock
    /// validator, `body` runs under the device's bound pseudo-lock (see `unbind`).
    public func withBound<R>(file: StaticString = #fileID, line: UInt = #line, _ body: (borrowing Bound) throws -> R) throws -> R {
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
            lock.wakeAll()
        }
        // Reports made in `body` (a sleeping call, a released Devres) go to this device's log.
        return try inScope {
            Lockdep.acquire(boundMap, trylock: true, function: "Device.withBound", file: file, line: line, log: log)
            defer { Lockdep.release(boundMap) }
            return try body(Bound(self))
        }
    }

    /// Runs `body` with this device's log and faults in scope on the calling thread: its
    /// driver's callbacks, `withBound` bodies and release run so.
    func inScope<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        let previous = unsafe ThreadState.deviceScope
        unsafe ThreadState.deviceScope = Unmanaged.passUnretained(self).toOpaque()
        defer { unsafe ThreadState.deviceScope = previous }
        return try KernelLog.withCurrent(log) { () throws(E) -> R in try FaultInjection.withScope(faults, body) }
    }

    /// The device whose driver callback (probe, remove, a release, a `withBound` body) runs
    /// on the calling thread, if any.
    package static var inScope: Device? {
        guard let raw = unsafe ThreadState.deviceScope else { return nil }
        // SAFETY: `inScope(_:)` stored it unretained and keeps `self` alive until it restores
        // the previous value.
        return unsafe Unmanaged<Device>.fromOpaque(raw).takeUnretainedValue()
    }

    // MARK: - Leaks on error paths

    /// A check run after the device's resources are released: given the device's name and
    /// what was released (`its unbind`), the lines of a report if the driver still holds
    /// something it acquired outside the devres list.
    package typealias LeakCheck = @Sendable (_ device: String, _ after: String) -> [String]?

    /// Registers a check, run after the device's resources are released (a failed probe,
    /// an unbind): a request_irq a driver's error path forgot to free (the IRQ core
    /// registers one for each `requestIRQ` made by a driver callback), work its remove
    /// cancelled without waiting.
    package func noteUnmanaged(check: @escaping LeakCheck) {
        lock.withLock { leakChecks.append(check) }
    }

    /// Runs and clears the leak checks, reporting each leak found (kind `violation`).
    func reportLeaks(after what: String) {
        let checks = lock.withLock { () -> [LeakCheck] in
            defer { leakChecks.removeAll() }
            return leakChecks
        }
        for lines in checks.compactMap({ $0(name, what) }) {
            AtomicContext.warn(.violation, lines, function: "Device.\(what)", log: log, file: #fileID, line: #line)
        }
    }

    /// The checker's entry test for this device's sleeping calls (and its resources'):
    /// reported to the device's log and refused as `atomicContext` in atomic context.
    func mightSleep(_ function: String, file: StaticString, line: UInt) throws(DeviceError) {
        do {
            try AtomicContext.mightSleep(function, log: log, file: file, line: line)
        } catch { throw .atomicContext(error) }
    }

    // MARK: - Bind

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
            try inScope { try driver.probe(Bound(self)) }
        } catch {
            _ = inScope { releaseAll(mode: .batched) }
            reportLeaks(after: "its failed probe")
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
}

extension Device: CustomStringConvertible {
    /// `Device(name)`.
    public var description: String { "Device(\(name))" }
}
