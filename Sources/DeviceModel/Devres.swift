import KernelRuntime
import RCU

/// A device resource: a value that lives while its device is bound, and is revoked and
/// dropped when the device is unbound (rust/kernel/devres.rs).
///
/// - `tryAccess` reads it from anywhere (nil once revoked), through its `Revocable`.
/// - `access(_:)` reads it on proof that the device is bound, with no RCU read lock.
///   Reading a value already released (the classic ordering bug: data registered after an
///   IRQ is released before that IRQ is freed, while its handler still runs) is caught,
///   reported to the device's log and refused, never a dangling read.
/// - Dropping the last reference before unbind revokes the value at once, without a grace
///   period of its own (nobody else can be reading it), and removes it from the device.
///   If that races with unbind, exactly one side drops the value and the other waits
///   until the drop has finished. Dropped in a task (where no thread of the concurrency
///   pool may wait), the drop is handed to the `Reaper` thread and done there shortly
///   after; `await Reaper.shared.flush()` waits for it.
///
/// - Complexity: Creating one allocates a handle, a list node and its Revocable (see
///   irqbench's unbind section for the measured bytes).
@safe
public final class Devres<Value: Sendable>: Sendable {
    let inner: DevresInner<Value>
    /// `inner.revocable`, unretained: reads borrow it through this (see `withRevocable`).
    @usableFromInline let readPath: Unmanaged<Revocable<Value>>

    /// Registers `value` on the bound device. With the mutex strategy, the lock's class for
    /// the lock validator is this call site (`Devres@file:line`).
    ///
    /// - Throws: `notBound` if the device is being released, `atomicContext` in atomic
    ///   context (allocating may sleep, as `GFP_KERNEL` does). On error `value` is dropped.
    @available(*, noasync, message: "may sleep")
    public init(
        _ bound: borrowing Device.Bound,
        _ value: consuming Value,
        strategy: RevocationStrategy = .rcu,
        file: StaticString = #fileID, line: UInt = #line
    ) throws(DeviceError) {
        let device = bound.device
        try device.mightSleep("Devres.init", file: file, line: line)
        // The kernel allocates the devres node here; an injected failure is its ENOMEM.
        if FaultInjection.fires(.devresFailure, fallback: device.faults, { $0.devresFailure }) {
            throw .outOfMemory(device: device.name, operation: "Devres.init")
        }
        let inner = DevresInner(device: device, value: value, strategy: strategy, file: file, line: line)
        do {
            try device.add(inner, operation: "Devres.init")
        } catch {
            inner.claimAndDrop()
            throw error
        }
        self.inner = inner
        unsafe readPath = Unmanaged.passUnretained(inner.revocable)
    }

    deinit {
        let inner = self.inner
        if AtomicContext.isAtomic {
            // A deinit cannot throw or sleep here: report, and let the reaper do the drop.
            _ = AtomicContext.sleepingCallReported(
                "Devres<\(Value.self)>.deinit", log: inner.device.log, file: #fileID, line: #line)
            Reaper.shared.schedule("drop Devres<\(Value.self)> of \(inner.device.name)") { Self.drop(inner) }
        } else if TaskContext.isInTask {
            // The drop may wait (for an unbind releasing the value, for `access` readers, for
            // the mutex, for its IRQ's handlers): in a task the reaper does it, unreported.
            Reaper.shared.schedule("drop Devres<\(Value.self)> of \(inner.device.name)") { Self.drop(inner) }
        } else {
            Self.drop(inner)
        }
    }

    /// Releases the value now, as unbind would (a `ReleasableResource`'s teardown runs, then
    /// the value is dropped), but without waiting a grace period for readers: the Devres'
    /// `revoke_nosync`. Its node leaves the device's list. Returns false if the value was
    /// already released (by an unbind, or an earlier call), after waiting for that release.
    ///
    /// - Safety: No reader may be inside `tryAccess` on another thread: the value is dropped
    ///   at once. (`access(_:)` readers are still waited for.) For a deliberately broken
    ///   teardown, as irqsim's torture test uses to show it catches one.
    @unsafe @discardableResult
    public func revokeNoSync() -> Bool {
        if inner.device.removeAndRelease(inner) { return true }
        inner.releaseOrWait()
        return false
    }

    private static func drop(_ inner: DevresInner<Value>) {
        // Still on the list: revoke_nosync, as no reader can hold the handle any more.
        // Otherwise an unbind took it: one side drops, the other waits.
        if !inner.device.removeAndRelease(inner) { inner.releaseOrWait() }
    }

    /// The device the value belongs to.
    public var device: Device { inner.device }
    /// Its place on the device's resource list (later resources are released first).
    package var sequence: UInt32 { inner.sequence.load(ordering: .acquiring) }

    /// How readers are kept off the value when it is revoked.
    public var strategy: RevocationStrategy { inner.revocable.strategy }
    /// Whether the value has been revoked (by unbind or a drop). Racy: for diagnostics.
    public var isRevoked: Bool { inner.revocable.isRevoked }

    /// Calls `body` with the value unless it has been revoked. See `Revocable.tryAccess`;
    /// a refused mutex-strategy access (atomic context) is reported to the device's log.
    @inlinable @inline(__always)
    public func tryAccess<R>(
        file: StaticString = #fileID, line: UInt = #line,
        _ body: (borrowing Value) throws -> R
    ) rethrows -> R? {
        try withRevocable { try $0.tryAccess(reportingTo: _log, file: file, line: line, body) }
    }

    /// `tryAccess` under a read-side section the caller holds.
    @inlinable @inline(__always)
    public func tryAccess<R>(
        under guard: borrowing RCUReadGuard,
        file: StaticString = #fileID, line: UInt = #line,
        _ body: (borrowing Value) throws -> R
    ) rethrows -> R? {
        try withRevocable { try $0.tryAccess(under: `guard`, reportingTo: _log, file: file, line: line, body) }
    }

    /// The value's `Revocable`. Not public: revoking it directly would drop the value
    /// behind `access(_:)`, which reads without a read lock on the promise that only unbind
    /// or the Devres' own drop releases it (as upstream, where it is private too).
    package var revocable: Revocable<Value> { inner.revocable }

    /// Calls `body` with the Revocable borrowed, not retained. Loaded through `inner`, it was
    /// retained and released on every read (seen in the release build): two atomic writes to
    /// a refcount that every reader of this Devres shares.
    @inlinable @inline(__always)
    func withRevocable<R>(_ body: (Revocable<Value>) throws -> R) rethrows -> R {
        // SAFETY: `self` is kept alive to the end of `body` (inlined, nothing else would keep
        // a temporary Devres alive past the load of `readPath`), and owns `inner`, which owns
        // the Revocable through a `let`: the unretained reference stays valid throughout.
        try withExtendedLifetime(self) { try unsafe readPath._withUnsafeGuaranteedRef(body) }
    }

    @usableFromInline
    var _log: KernelLog { inner.device.log }

    /// Calls `body` with the value on proof that the device is bound, without an RCU read
    /// lock (`Devres::access`). Never sleeps. An unbind of the device from inside `body` (on
    /// a threaded handler) does not wait for `body`: it is reported, and the reaper drops
    /// the value once `body` has returned.
    ///
    /// - Throws: `wrongDevice` (EINVAL) for proof of another device; `released` if the
    ///   value was already dropped (reported to the device's log as a violation).
    public func access<R>(
        _ bound: borrowing Device.Bound,
        file: StaticString = #fileID, line: UInt = #line,
        _ body: (borrowing Value) -> R
    ) throws(DeviceError) -> R {
        let device = inner.device
        guard bound.device === device else {
            throw .wrongDevice(expected: device.name, given: bound.device.name)
        }
        inner.accessors.add(1, ordering: .sequentiallyConsistent)
        defer { inner.accessors.subtract(1, ordering: .sequentiallyConsistent) }
        guard !inner.isClaimed else {
            var lines = [
                "BUG: irqemu: access to released Devres<\(Value.self)> of device \(device.name)",
                "the value was dropped at unbind before this reader stopped: a resource registered after an IRQ is released before that IRQ is freed",
                "the value was registered at \(inner.site)",
            ]
            if let release = Quarantine.release(of: inner) {
                let ago = Double(monotonicNanoseconds() &- release.at) / 1e6
                lines.append("released by \(release.thread)/\(release.tid) \(String(ago.formatted3)) ms ago; its deinit is delayed (quarantine)")
            }
            AtomicContext.warn(.violation, lines, function: "Devres.access(_:)", log: device.log, file: "\(file)", line: line)
            throw .released(device: device.name, resource: "Devres<\(Value.self)>")
        }
        // A handler reading data registered after its own IRQ: reported, whatever the timing.
        if let handler = HandlerMark.current, handler.device === device { handler.checkAccess(of: inner, file: file, line: line) }
        // The thread marks the node while `body` runs: a release of it from inside `body`
        // (an unbind) is handed to the reaper instead of waiting for this access.
        unsafe ThreadState.pushHeldLock(inner.accessMark)
        defer { unsafe ThreadState.popHeldLock(inner.accessMark) }
        // For the lock validator, `body` runs under the device's bound pseudo-lock.
        Lockdep.acquire(device.boundMap, trylock: true, function: "Devres.access", file: file, line: line, log: device.log)
        defer { Lockdep.release(device.boundMap) }
        // SAFETY: not claimed while we are counted as an accessor, so the dropper waits
        // for us before dropping (seq-cst on both sides).
        return inner.revocable.unsafeBorrow(body)
    }
}

extension Double {
    /// Three decimals, without Foundation.
    fileprivate var formatted3: String {
        let scaled = (self * 1000).rounded()
        let whole = Int(scaled / 1000), fraction = Int(abs(scaled).truncatingRemainder(dividingBy: 1000))
        let digits = String(fraction)
        return "\(whole).\(String(repeating: "0", count: 3 - digits.count))\(digits)"
    }
}
