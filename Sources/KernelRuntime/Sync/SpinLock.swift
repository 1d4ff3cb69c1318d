/// A lock whose holders are in atomic context: the kernel's `spinlock_t`.
///
/// While it is held the checker treats the thread as atomic, so a sleeping call under it
/// (`RCU.synchronize()`, a `SleepingMutex`, `freeIRQ`) is reported and refused. Usable from
/// hard-IRQ handlers. `withLockIRQSave` also disables interrupts (`spin_lock_irqsave`).
///
/// The lock validator tracks it (`Lockdep`): its class is its creation site, or `key`.
/// Taken in a hard-IRQ handler and also with interrupts on (plain `withLock` in process
/// context), it is reported as inconsistent lock state.
///
/// Built on a pthread mutex (which ThreadSanitizer understands); keep critical sections short.
public final class SpinLock<Value>: ValidatedLock {
    // `value` is only touched inside `lock`.
    private let lock = Lock()
    private var value: Value
    /// The lock's class and identity for the validator.
    public let lockdepMap: LockdepMap

    /// A lock guarding `value`, of class `key`, or of its creation site without one.
    public init(_ value: Value, key: LockClassKey? = nil, file: StaticString = #fileID, line: UInt = #line) {
        self.value = value
        lockdepMap = LockdepMap(kind: "SpinLock", key: key, type: .spinlock, file: file, line: line)
    }

    /// `spin_lock` … `spin_unlock`.
    public func withLock<R, E: Error>(
        file: StaticString = #fileID, line: UInt = #line, _ body: (inout Value) throws(E) -> R
    ) throws(E) -> R {
        try locked(subclass: 0, function: "spin_lock", file: file, line: line, body)
    }

    /// `spin_lock_nested`: `withLock`, as `subclass` (1 to 7) of the lock's class, for a
    /// deliberate nesting of two locks of one class (a parent's, then a child's).
    public func withLockNested<R, E: Error>(
        subclass: Int = 1, file: StaticString = #fileID, line: UInt = #line, _ body: (inout Value) throws(E) -> R
    ) throws(E) -> R {
        try locked(subclass: subclass, function: "spin_lock_nested", file: file, line: line, body)
    }

    /// `spin_lock_irqsave` … `spin_unlock_irqrestore` (`subclass`: `spin_lock_irqsave_nested`).
    public func withLockIRQSave<R, E: Error>(
        subclass: Int = 0, file: StaticString = #fileID, line: UInt = #line, _ body: (inout Value) throws(E) -> R
    ) throws(E) -> R {
        AtomicContext.irqsOffEnter()
        defer { AtomicContext.irqsOffExit() }
        return try locked(subclass: subclass, function: "spin_lock_irqsave", file: file, line: line, body)
    }

    private func locked<R, E: Error>(
        subclass: Int, function: StaticString, file: StaticString, line: UInt, _ body: (inout Value) throws(E) -> R
    ) throws(E) -> R {
        AtomicContext.preemptDisable()
        Lockdep.acquire(lockdepMap, subclass: subclass, function: function, file: file, line: line)
        lock.lock()
        defer {
            Lockdep.release(lockdepMap)
            lock.unlock()
            AtomicContext.preemptEnable()
        }
        return try body(&value)
    }
}

// SAFETY: the value is only reached with the lock held, so sharing the lock shares the value
// between threads one at a time: safe when the value itself may cross threads (the model of
// NIOLockedValueBox; `Synchronization.Mutex` instead takes `sending` values).
extension SpinLock: @unchecked Sendable where Value: Sendable {}
