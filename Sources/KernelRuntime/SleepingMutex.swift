/// A lock that may sleep: the kernel's `struct mutex`.
///
/// Taking it is a sleeping call: in atomic context (a hard-IRQ handler, an RCU read-side
/// section, under a `SpinLock`) `withLock` reports and throws instead of locking.
public final class SleepingMutex<Value> {
    // `value` is only touched inside `lock`.
    private let lock = Lock()
    private var value: Value

    /// A mutex guarding `value` (`mutex_init`).
    public init(_ value: Value) { self.value = value }

    /// `mutex_lock` … `mutex_unlock`.
    ///
    /// - Throws: `AtomicContextViolation` in atomic context; the lock was not taken.
    @available(*, noasync, message: "may block the thread")
    public func withLock<R>(
        file: StaticString = #fileID, line: UInt = #line,
        _ body: (inout Value) -> R
    ) throws(AtomicContextViolation) -> R {
        try AtomicContext.mightSleep("SleepingMutex.withLock(_:)", file: file, line: line)
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

// SAFETY: the value is only reached with the lock held, so sharing the lock shares the value
// between threads one at a time: safe when the value itself may cross threads (the model of
// NIOLockedValueBox; `Synchronization.Mutex` instead takes `sending` values).
extension SleepingMutex: @unchecked Sendable where Value: Sendable {}
