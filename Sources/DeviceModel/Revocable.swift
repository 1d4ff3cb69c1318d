import CSupport
import Glibc
import KernelRuntime
import RCU
import Synchronization

/// A value that can be revoked while other threads may be reading it: the kernel's
/// `Revocable<T>` (rust/kernel/revocable.rs), with an RCU or a mutex strategy.
///
/// Guarantees, for both strategies:
/// - After a `revoke()` that returned `true`, no reader holds the value and no new reader
///   gets it.
/// - The value is dropped exactly once: by the winning `revoke()`, or by `deinit` if it
///   was never revoked.
/// - Every `revoke()` returns only once the value is gone: the one that revoked it returns
///   `true`, every other caller waits until the winner has finished dropping it and
///   returns `false` (upstream's "fix race between concurrent revokers", June 2026). A
///   loser on the winner's own thread (the value's deinit revoking its own Revocable)
///   cannot wait for itself: it is reported and returns at once.
///
/// Reading (`tryAccess`) with the RCU strategy is a read lock, an acquire load and an
/// unlock: no atomic write, no retain or release, no allocation.
///
/// - Invariant: `storage` holds a live value while `drop` is `present`. Only the caller that
///   moves `drop` from `present` to `dropping` deinitializes it, and (RCU) only after a
///   grace period that began after `state` left `rcuAvailable`; otherwise the object's own
///   teardown after `deinit` drops it. `drop` becomes `dropped` once the value's deinit
///   has returned.
@safe
public final class Revocable<Value: Sendable>: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `storage` is read only while `state` was seen available
    // inside a read-side section (RCU) or under `mutex`, and deinitialized only by the
    // single caller that moved `drop` off `present`, after the strategy's wait. See
    // Invariant.

    /// One byte decides the read: the RCU fast path is a single load and compare, with the
    /// mutex strategy's values on its cold path (a second branch on the strategy would cost
    /// the hot loop a register spill, measured).
    @inlinable static var rcuRevoked: UInt8 { 0 }
    @inlinable static var rcuAvailable: UInt8 { 1 }
    @inlinable static var mutexAvailable: UInt8 { 2 }
    @inlinable static var mutexRevoked: UInt8 { 3 }

    @usableFromInline let state: Atomic<UInt8>
    /// The value's drop: `present`, `dropping` (its deinit runs), `dropped`.
    @usableFromInline let drop: Atomic<UInt8>
    @inlinable static var present: UInt8 { 0 }
    @inlinable static var dropping: UInt8 { 1 }
    @inlinable static var dropped: UInt8 { 2 }
    /// The value, inline in the object, so a read follows no pointer to reach it (a separate
    /// allocation cost every read one more dependent load, measured). Written by `init`, by
    /// the one caller that drops it, and by `deinit`; read only as the Invariant
    /// allows. Readers reach it through its address (`withStorageAddress`), formally a
    /// modify access, and many may do so at once: the run-time exclusivity check (a call
    /// per read) is off, and nothing writes while they read. Once dropped it may
    /// hold the dropped value's stale bits (`dropValue()`).
    @usableFromInline @exclusivity(unchecked) var storage: Value?
    /// The mutex strategy's lock, allocated only for it: a bare pthread mutex (40 bytes),
    /// followed in the same allocation by its lock class (`lockdepMap`), which the 48
    /// bytes malloc gives a 40-byte request hold anyway.
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>?

    /// Where the lock class sits in the mutex's allocation.
    @usableFromInline static var mapOffset: Int { unsafe MemoryLayout<pthread_mutex_t>.stride }

    /// The mutex strategy's lock class for the lock validator: the `init` call site
    /// (`Revocable@file:line`, or a Devres's), shared by every Revocable made there (each
    /// is told apart by its mutex's address). Nil with the RCU strategy.
    @usableFromInline package var lockdepMap: LockdepMap? {
        guard let mutex = unsafe mutex else { return nil }
        // SAFETY: init stored an unretained reference to a map that lives for the process
        // (`LockdepMap.shared`), at `mapOffset` of the mutex's allocation.
        return unsafe UnsafeRawPointer(mutex).load(fromByteOffset: Self.mapOffset, as: Unmanaged<LockdepMap>.self)
            .takeUnretainedValue()
    }
    /// How readers are kept off the value when it is revoked.
    public let strategy: RevocationStrategy

    /// Wraps `value`, readable until revoked. With the mutex strategy, the lock's class for
    /// the lock validator is this call site.
    public convenience init(
        _ value: consuming Value, strategy: RevocationStrategy = .rcu, file: StaticString = #fileID, line: UInt = #line
    ) {
        self.init(value, strategy: strategy, kind: "Revocable", file: file, line: line)
    }

    /// Wraps `value`; a mutex's class is `kind@file:line` (a Devres names its own).
    package init(_ value: consuming Value, strategy: RevocationStrategy, kind: StaticString, file: StaticString, line: UInt) {
        self.strategy = strategy
        unsafe storage = value
        state = Atomic(strategy == .rcu ? Self.rcuAvailable : Self.mutexAvailable)
        drop = Atomic(Self.present)
        if strategy == .mutex {
            let raw = unsafe UnsafeMutableRawPointer.allocate(
                byteCount: Self.mapOffset + MemoryLayout<Unmanaged<LockdepMap>>.size,
                alignment: MemoryLayout<pthread_mutex_t>.alignment)
            let mutex = unsafe raw.initializeMemory(as: pthread_mutex_t.self, repeating: pthread_mutex_t(), count: 1)
            unsafe pthread_mutex_init(mutex, nil)
            // One map per creation site, shared; the mutex's address is the instance.
            let map = LockdepMap.shared(kind: kind, type: .mutex, file: file, line: line)
            unsafe raw.storeBytes(of: Unmanaged.passUnretained(map), toByteOffset: Self.mapOffset, as: Unmanaged<LockdepMap>.self)
            unsafe self.mutex = mutex
        } else {
            unsafe self.mutex = nil
        }
    }

    deinit {
        // Nobody else holds a reference, so nobody is reading: a value still held is dropped
        // with `storage` after this body, without a grace period. A dropped one may have left
        // stale bits there: overwrite them, without destroying them again.
        if drop.load(ordering: .acquiring) != Self.present {
            unsafe withUnsafeMutablePointer(to: &storage) { unsafe $0.initialize(to: nil) }
        }
        if let mutex = unsafe mutex {
            unsafe pthread_mutex_destroy(mutex)
            unsafe UnsafeMutableRawPointer(mutex).deallocate()  // the mutex and the map's pointer
        }
    }

    /// Calls `body` with the address of the value in `storage`. Taken by an inout-to-pointer
    /// conversion, not `withUnsafeMutablePointer(to:)`, which in unspecialized code (a
    /// Devres drop) looks up `Optional<Value>`'s metadata at run time: it made a batched
    /// unbind's drops four times slower (measured).
    @inlinable @inline(__always)
    func withStorageAddress<R>(_ body: (UnsafeMutablePointer<Value>) throws -> R) rethrows -> R {
        try unsafe Self.payload(&storage, body)
    }

    /// `body` with `storage`'s payload. This relies on Swift's layout of single-payload enums
    /// (docs/ABI/TypeLayout.rst: the payload at offset 0, any extra tag after it), an ABI
    /// fact rather than a language promise; RevocableTests checks values whose Optional
    /// takes a tag byte, uses spare bits, or nests.
    @inlinable @inline(__always)
    static func payload<R>(
        _ storage: UnsafeMutablePointer<Value?>, _ body: (UnsafeMutablePointer<Value>) throws -> R
    ) rethrows -> R {
        try unsafe body(UnsafeMutableRawPointer(storage).assumingMemoryBound(to: Value.self))
    }

    /// Takes the mutex (a revoke's), validated.
    func lockMutex(file: StaticString = #fileID, line: UInt = #line) {
        guard let mutex = unsafe mutex, let map = lockdepMap else { return }
        Lockdep.acquire(map, instance: mutex, function: "mutex_lock", file: file, line: line)
        unsafe pthread_mutex_lock(mutex)
    }

    func unlockMutex() {
        guard let mutex = unsafe mutex, let map = lockdepMap else { return }
        Lockdep.release(map, instance: mutex)
        unsafe pthread_mutex_unlock(mutex)
    }

    /// Takes the mutex for a reader and records it on the thread (two thread-local stores),
    /// so a relock by this thread inside the access is refused rather than deadlocking.
    /// Returns false, not locking, for such a relock (found only when the lock is taken,
    /// so the uncontended path costs no check). The trylock fast path counts as an
    /// acquisition for the lock validator, as the blocking one does.
    @inlinable @inline(__always)
    func lockMutexForReader(log: KernelLog?, file: StaticString, line: UInt) -> Bool {
        guard let mutex = unsafe mutex, let map = lockdepMap else { return false }
        if unsafe pthread_mutex_trylock(mutex) != 0 {
            if _slowPath(mutexHeldByCurrentThread) { return false }
            Lockdep.acquire(map, instance: mutex, function: "mutex_lock", file: file, line: line, log: log)
            unsafe pthread_mutex_lock(mutex)
        } else {
            Lockdep.acquire(map, instance: mutex, function: "mutex_lock", file: file, line: line, log: log)
        }
        unsafe ThreadState.pushHeldLock(UnsafeMutableRawPointer(mutex))
        return true
    }

    @inlinable @inline(__always)
    func unlockMutexForReader() {
        guard let mutex = unsafe mutex, let map = lockdepMap else { return }
        unsafe ThreadState.popHeldLock(UnsafeMutableRawPointer(mutex))
        Lockdep.release(map, instance: mutex)
        unsafe pthread_mutex_unlock(mutex)
    }

    /// Whether the calling thread holds the mutex for a reader: taking it again would
    /// deadlock (the kernel's lockdep: possible recursive locking).
    @usableFromInline
    package var mutexHeldByCurrentThread: Bool {
        guard ThreadState.holdsLocks, let mutex = unsafe mutex else { return false }
        return unsafe ThreadState.holdsLock(UnsafeMutableRawPointer(mutex))
    }

    /// Reports a relock of the mutex by its holder, in lockdep's words (the lock
    /// validator's `possible recursive locking detected`, once per refusal: the validator
    /// never sees the refused acquisition), and returns the refusal; nil if this thread
    /// does not hold it. Costs one thread-local load when the thread holds no Revocable
    /// mutex; readers call it only when their trylock failed.
    @usableFromInline
    package func recursiveLockReported(_ function: String, log: KernelLog?, file: StaticString, line: UInt) -> AtomicContextViolation? {
        guard mutexHeldByCurrentThread, let map = lockdepMap, let mutex = unsafe mutex else { return nil }
        return AtomicContextViolation(
            report: Lockdep.recursiveLockingRefused(
                map, instance: UInt(bitPattern: mutex), function: function, log: log, file: "\(file)", line: line))
    }

    /// Whether the value has been revoked. Racy by nature: for diagnostics.
    public var isRevoked: Bool {
        let s = state.load(ordering: .relaxed)
        return s == Self.rcuRevoked || s == Self.mutexRevoked
    }

    // MARK: - Reading

    /// Calls `body` with the value if it has not been revoked (`try_access_with`).
    ///
    /// RCU: `body` runs inside a read-side section, in atomic context: it must not sleep.
    /// Mutex: `body` runs under the mutex; in atomic context the access is reported and
    /// refused (returns nil), because taking a mutex may sleep.
    ///
    /// - Returns: `body`'s result, or nil if the value was revoked (or refused).
    /// - Complexity: RCU: a read lock, one load and an unlock (a few nanoseconds), no atomic
    ///   write, no retain, no allocation.
    @inlinable @inline(__always)
    public func tryAccess<R>(
        file: StaticString = #fileID, line: UInt = #line,
        _ body: (borrowing Value) throws -> R
    ) rethrows -> R? {
        try tryAccess(reportingTo: nil, file: file, line: line, body)
    }

    /// `tryAccess(_:)`, with a refused mutex access reported to `log` (evaluated only then)
    /// rather than the thread's current log: a Devres reports to its device's.
    @inlinable @inline(__always)
    package func tryAccess<R>(
        reportingTo log: @autoclosure () -> KernelLog?,
        file: StaticString, line: UInt,
        _ body: (borrowing Value) throws -> R
    ) rethrows -> R? {
        do {
            let held = RCUReadGuard(unchecked: ())
            let s = state.load(ordering: .acquiring)
            if _fastPath(s == Self.rcuAvailable) {
                // SAFETY: available was seen inside this read-side section, so the value is
                // not dropped before the section ends (see Invariant).
                return try unsafeBorrow(body)
            }
            _ = consume held
            if s == Self.rcuRevoked { return nil }
        }
        // The mutex strategy. Its result goes through a local rather than being returned
        // from the out-of-line call, which would put the fast path's result in memory too.
        var result: R? = nil
        try mutexAccess(into: &result, log: log(), file: file, line: line, body)
        return result
    }

    /// `tryAccess` under a read-side section the caller already holds
    /// (`try_access_with_guard`). With the mutex strategy this is a mutex lock inside a
    /// read-side section: reported and refused.
    @inlinable @inline(__always)
    public func tryAccess<R>(
        under guard: borrowing RCUReadGuard,
        file: StaticString = #fileID, line: UInt = #line,
        _ body: (borrowing Value) throws -> R
    ) rethrows -> R? {
        try tryAccess(under: `guard`, reportingTo: nil, file: file, line: line, body)
    }

    /// `tryAccess(under:_:)`, reporting a refused mutex access to `log`.
    @inlinable @inline(__always)
    package func tryAccess<R>(
        under guard: borrowing RCUReadGuard,
        reportingTo log: @autoclosure () -> KernelLog?,
        file: StaticString, line: UInt,
        _ body: (borrowing Value) throws -> R
    ) rethrows -> R? {
        let s = state.load(ordering: .acquiring)
        if _fastPath(s == Self.rcuAvailable) {
            // SAFETY: as in `tryAccess(_:)`; `guard` is the read-side section.
            return try unsafeBorrow(body)
        }
        if s == Self.rcuRevoked { return nil }
        var result: R? = nil
        try mutexAccess(into: &result, log: log(), file: file, line: line, body)
        return result
    }

    /// Returns a guard through which the value can be read while it lives, or nil if
    /// revoked (`try_access`). The guard holds the read lock (RCU) or the mutex: keep it
    /// short, and prefer the closure form.
    ///
    /// In a task (async code, or synchronous code an async function called) it is reported
    /// (`BUG: irqemu: … section started in a task`) and returns nil: the read lock and the
    /// mutex belong to the thread that takes them, and a task may resume on another thread
    /// after a suspension. The closure form works there.
    public func tryAccess(file: StaticString = #fileID, line: UInt = #line) -> RevocableGuard<Value>? {
        if RCUReadGuard.refusedInTask(
            "Revocable.tryAccess()",
            section: strategy == .mutex ? "Revocable<\(Value.self)> mutex section" : "RCU read-side section",
            owner: strategy == .mutex
                ? "a mutex belongs to the thread that locks it" : "liburcu's read lock belongs to the thread that takes it",
            file: file, line: line) != nil {
            return nil
        }
        if strategy == .mutex {
            guard (try? AtomicContext.mightSleep("Revocable.tryAccess() [mutex]", file: file, line: line)) != nil else { return nil }
            guard lockMutexForReader(log: nil, file: file, line: line) else {
                _ = recursiveLockReported("Revocable.tryAccess() [mutex]", log: nil, file: file, line: line)
                return nil
            }
            guard state.load(ordering: .relaxed) == Self.mutexAvailable else {
                unlockMutexForReader()
                return nil
            }
            return RevocableGuard(self, rcu: nil)
        }
        let held = RCUReadGuard(unchecked: ())
        guard state.load(ordering: .acquiring) == Self.rcuAvailable else { return nil }
        return RevocableGuard(self, rcu: held)
    }

    /// The mutex strategy's read, out of line (the RCU path never reaches it), but
    /// specializable. Leaves `result` nil if revoked or refused.
    @inlinable @inline(never)
    func mutexAccess<R>(
        into result: inout R?, log: KernelLog?, file: StaticString, line: UInt, _ body: (borrowing Value) throws -> R
    ) rethrows {
        guard strategy == .mutex else { return }
        do {
            try AtomicContext.mightSleep("Revocable.tryAccess(_:) [mutex]", log: log, file: file, line: line)
        } catch {
            return
        }
        guard lockMutexForReader(log: log, file: file, line: line) else {
            _ = recursiveLockReported("Revocable.tryAccess(_:) [mutex]", log: log, file: file, line: line)
            return
        }
        defer { unlockMutexForReader() }
        guard state.load(ordering: .relaxed) == Self.mutexAvailable else { return }
        // SAFETY: available under the lock; revoke clears it under the same lock.
        result = try unsafeBorrow(body)
    }

    // MARK: - Revoking

    /// Revokes the value: no reader gets it from now on; waits until no reader holds it,
    /// then drops it. Returns `true` for the one caller that revoked it; every other caller
    /// waits until that caller has finished dropping the value, then returns `false`. So
    /// once any `revoke()` returns, the value is gone.
    ///
    /// RCU: waits one grace period. Mutex: takes the lock, no grace period.
    ///
    /// A losing call on the thread that is dropping the value (the value's deinit revoking
    /// its own Revocable) cannot wait for itself: it logs a warning and returns `false` at
    /// once, with the drop still in progress further up its stack.
    /// - Throws: `AtomicContextViolation` in atomic context, or (mutex) inside this
    ///   Revocable's own access, where taking its lock again would deadlock (reported as
    ///   lockdep's possible recursive locking); nothing was revoked.
    @available(*, noasync, message: "may block for an RCU grace period")
    @discardableResult
    public func revoke(file: StaticString = #fileID, line: UInt = #line) throws(AtomicContextViolation) -> Bool {
        try AtomicContext.mightSleep("Revocable.revoke()", file: file, line: line)
        if strategy == .mutex {
            if let refused = recursiveLockReported("Revocable.revoke()", log: nil, file: file, line: line) { throw refused }
            if mutexRevoke() { return true }
        } else if unpublish() {
            RCU.synchronizeUnchecked()
            dropValue()
            return true
        }
        waitForWinner(file: file, line: line)
        return false
    }

    /// A losing `revoke()`'s wait: until the winner has dropped the value (at once if it
    /// has). On the winner's own thread, inside the value's drop, it reports and returns.
    func waitForWinner(file: StaticString, line: UInt) {
        if drop.load(ordering: .acquiring) == Self.dropped { return }
        if ThreadState.holdsLocks, unsafe ThreadState.holdsLock(dropMark) {
            AtomicContext.warn(
                .warning,
                ["WARNING: Revocable<\(Value.self)>.revoke() from the drop of its own value would wait for itself; not waiting"],
                function: "Revocable.revoke()", log: nil, file: "\(file)", line: line)
            return
        }
        WaitVar.wait(on: self) { drop.load(ordering: .acquiring) == Self.dropped }
    }

    /// The calling thread's mark while it drops this value (on its held-lock records), so a
    /// revoke from inside the drop knows it is the winner's own thread.
    private var dropMark: UnsafeMutableRawPointer { unsafe Unmanaged.passUnretained(self).toOpaque() }

    /// Destroys the value in place, with the drop marked on the thread, then publishes the
    /// drop as finished and wakes losing revokers. The caller moved `drop` to `dropping`.
    private func finishDrop(_ destroy: () -> Void) {
        unsafe ThreadState.pushHeldLock(dropMark)
        destroy()
        unsafe ThreadState.popHeldLock(dropMark)
        drop.store(Self.dropped, ordering: .sequentiallyConsistent)
        WaitVar.wakeUp(self)
    }

    /// Revokes and drops the value without waiting for readers (`revoke_nosync`).
    ///
    /// - Safety: No reader may be inside `tryAccess` on another thread: the value is
    ///   dropped at once. With the mutex strategy this is `revoke()`, and inside this
    ///   Revocable's own access it is reported and refused as `revoke()` is (returns false,
    ///   nothing revoked) rather than relocking the held mutex.
    @unsafe @discardableResult
    public func revokeNoSync() -> Bool {
        if strategy == .mutex {
            if recursiveLockReported("Revocable.revokeNoSync()", log: nil, file: #fileID, line: #line) != nil { return false }
            return mutexRevoke()
        }
        guard unpublish() else { return false }
        dropValue()
        return true
    }

    // MARK: - The two stages, for Devres' batched unbind

    /// Stage 1 (RCU): flips the flag so no new reader gets the value. Returns whether this
    /// call flipped it. The value stays alive until `dropValue()`.
    package func unpublish() -> Bool {
        state.compareExchange(
            expected: Self.rcuAvailable, desired: Self.rcuRevoked, ordering: .acquiringAndReleasing
        ).exchanged
    }

    /// Stage 3: drops the value, once. Call after a grace period that began after
    /// `unpublish()` (RCU), or when no reader can exist. Returns whether it dropped it.
    @discardableResult
    package func dropValue(into quarantine: ((consuming Value) -> Void)? = nil) -> Bool {
        guard drop.compareExchange(expected: Self.present, desired: Self.dropping, ordering: .acquiringAndReleasing).exchanged
        else { return false }
        // Destroyed in place, its bits left as they are: a reader that raced an unsafe drop
        // (`revokeNoSync`) reads the stale value, as it would read freed memory in the
        // kernel, rather than nil (irqsim's broken strategy counts on this). Into a
        // quarantine it is moved instead, alive, its bits left the same way.
        finishDrop {
            if let quarantine {
                quarantine(unsafe withStorageAddress { unsafe $0.move() })
            } else {
                unsafe withStorageAddress { _ = unsafe $0.deinitialize(count: 1) }
            }
        }
        return true
    }

    /// Mutex revoke: decide the winner with one compare-and-swap (so a losing call returns
    /// at once, even while a reader holds the mutex), then take the mutex to wait for a
    /// reader that saw the value available, and drop it outside the lock (after
    /// `beforeDrop`). A reader that locks after that sees the flag cleared: the swap
    /// happens before this call's lock and unlock.
    @discardableResult
    package func mutexRevoke(
        beforeDrop: (borrowing Value) -> Void = { _ in }, into quarantine: ((consuming Value) -> Void)? = nil
    ) -> Bool {
        guard mutexUnpublish() else { return false }
        mutexDrop(beforeDrop: beforeDrop, into: quarantine)
        return true
    }

    /// The mutex revoke's first stage: the compare-and-swap that decides the winner and
    /// keeps new readers off. Never blocks. Returns whether this call won.
    package func mutexUnpublish() -> Bool {
        strategy == .mutex
            && state.compareExchange(
                expected: Self.mutexAvailable, desired: Self.mutexRevoked, ordering: .sequentiallyConsistent
            ).exchanged
    }

    /// The mutex revoke's second stage, for the winner of `mutexUnpublish()`: waits for a
    /// reader that saw the value available (the lock), and drops it outside the lock.
    package func mutexDrop(
        beforeDrop: (borrowing Value) -> Void = { _ in }, into quarantine: ((consuming Value) -> Void)? = nil
    ) {
        lockMutex()
        var taken: Value? = nil
        if drop.compareExchange(expected: Self.present, desired: Self.dropping, ordering: .relaxed).exchanged {
            taken = unsafe withStorageAddress { unsafe $0.move() }
        }
        unlockMutex()
        guard taken != nil else { return }
        finishDrop {
            if let value = taken { beforeDrop(value) }
            if let quarantine, let value = taken.take() { quarantine(value) }
            taken = nil  // dropped here, outside the lock
        }
    }

    /// Whether the value has been dropped.
    package var isDropped: Bool { drop.load(ordering: .acquiring) != Self.present }

    /// Borrows the value without checking the flag; the caller guarantees it is alive (the
    /// Invariant). In place: no copy, so no retain, even where the read is not specialized
    /// (`storage.unsafelyUnwrapped` copies there, as the guard form's `value`, which cannot
    /// yield from a closure, does).
    @inlinable @inline(__always)
    package func unsafeBorrow<R>(_ body: (borrowing Value) throws -> R) rethrows -> R {
        try unsafe withStorageAddress { try body(unsafe $0.pointee) }
    }
}

/// Access to a `Revocable`'s value for as long as the guard lives (`RevocableGuard`). Holds
/// the RCU read lock (atomic context) or the mutex. Not `Sendable`: it belongs to the
/// thread that took it.
public struct RevocableGuard<Value: Sendable>: ~Copyable {
    // Stored properties are destroyed in declaration order, after `deinit`: the read lock
    // ends before the guard lets go of the Revocable, so if the guard held the last
    // reference, the value's deinit runs outside the section (and the mutex), where it may
    // sleep or call back into the library.
    @usableFromInline let rcu: RCUReadGuard?
    @usableFromInline let revocable: Revocable<Value>

    init(_ revocable: Revocable<Value>, rcu: consuming RCUReadGuard?) {
        self.rcu = rcu
        self.revocable = revocable
    }

    /// The value, borrowed.
    @inlinable
    public var value: Value {
        _read {
            // SAFETY: the guard holds the read lock or the mutex under which the value was
            // seen available.
            yield unsafe revocable.storage.unsafelyUnwrapped
        }
    }

    deinit {
        if rcu == nil { revocable.unlockMutexForReader() }
        // `rcu`, if any, unlocks when it is destroyed after this, before `revocable` goes.
    }
}

@available(*, unavailable, message: "the guard's lock belongs to the thread that took it")
extension RevocableGuard: Sendable {}
