/// A lock that may sleep: the kernel's `struct mutex`.
///
/// Taking it is a sleeping call: in atomic context (a hard-IRQ handler, an RCU read-side
/// section, under a `SpinLock`) `withLock` reports and throws instead of locking.
///
/// The lock validator tracks it (`Lockdep`): its class is its creation site, or `key`.
public final class SleepingMutex<Value>: ValidatedLock {
    // `value` is only touched inside `lock`.
    private let lock = Lock()
    private var value: Value
    /// The lock's class and identity for the validator.
    public let lockdepMap: LockdepMap

    /// A mutex guarding `value`, of class `key`, or of its creation site without one.
    public init(_ value: Value, key: LockClassKey? = nil, file: StaticString = #fileID, line: UInt = #line) {
        self.value = value
        lockdepMap = LockdepMap(kind: "SleepingMutex", key: key, type: .mutex, file: file, line: line)
    }

    /// `mutex_lock` … `mutex_unlock`.
    ///
    /// - Throws: `AtomicContextViolation` in atomic context; the lock was not taken.
    @available(*, noasync, message: "may block the thread")
    public func withLock<R>(
        file: StaticString = #fileID, line: UInt = #line,
        _ body: (inout Value) -> R
    ) throws(AtomicContextViolation) -> R {
        try locked(subclass: 0, function: "mutex_lock", file: file, line: line, body)
    }

    /// `mutex_lock_nested`: `withLock`, as `subclass` (1 to 7) of the mutex's class, for a
    /// deliberate nesting of two mutexes of one class (a parent's, then a child's).
    @available(*, noasync, message: "may block the thread")
    public func withLockNested<R>(
        subclass: Int = 1, file: StaticString = #fileID, line: UInt = #line,
        _ body: (inout Value) -> R
    ) throws(AtomicContextViolation) -> R {
        try locked(subclass: subclass, function: "mutex_lock_nested", file: file, line: line, body)
    }

    private func locked<R>(
        subclass: Int, function: StaticString, file: StaticString, line: UInt, _ body: (inout Value) -> R
    ) throws(AtomicContextViolation) -> R {
        try AtomicContext.mightSleep("SleepingMutex.withLock(_:)", file: file, line: line)
        Lockdep.acquire(lockdepMap, subclass: subclass, function: function, file: file, line: line)
        lock.lock()
        defer {
            Lockdep.release(lockdepMap)
            lock.unlock()
        }
        return body(&value)
    }
}

// SAFETY: the value is only reached with the lock held, so sharing the lock shares the value
// between threads one at a time: safe when the value itself may cross threads (the model of
// NIOLockedValueBox; `Synchronization.Mutex` instead takes `sending` values).
extension SleepingMutex: @unchecked Sendable where Value: Sendable {}
