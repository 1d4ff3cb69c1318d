/// A lock whose holders are in atomic context: the kernel's `spinlock_t`.
///
/// While it is held the checker treats the thread as atomic, so a sleeping call under it
/// (`RCU.synchronize()`, a `SleepingMutex`, `freeIRQ`) is reported and refused. Usable from
/// hard-IRQ handlers. `withLockIRQSave` also disables interrupts (`spin_lock_irqsave`).
///
/// Built on a pthread mutex (which ThreadSanitizer understands); keep critical sections short.
public final class SpinLock<Value> {
    // `value` is only touched inside `lock`.
    private let lock = Lock()
    private var value: Value

    /// A spinlock guarding `value` (`spin_lock_init`).
    public init(_ value: Value) { self.value = value }

    /// `spin_lock` … `spin_unlock`.
    public func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        AtomicContext.preemptDisable()
        lock.lock()
        defer {
            lock.unlock()
            AtomicContext.preemptEnable()
        }
        return try body(&value)
    }

    /// `spin_lock_irqsave` … `spin_unlock_irqrestore`.
    public func withLockIRQSave<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        AtomicContext.irqsOffEnter()
        defer { AtomicContext.irqsOffExit() }
        return try withLock(body)
    }
}

// SAFETY: the value is only reached with the lock held, so sharing the lock shares the value
// between threads one at a time: safe when the value itself may cross threads (the model of
// NIOLockedValueBox; `Synchronization.Mutex` instead takes `sending` values).
extension SpinLock: @unchecked Sendable where Value: Sendable {}
