import Glibc

/// A lock and a condition variable: threads sleep until a predicate on the state the lock
/// guards becomes true (the kernel's lock plus wait queue). Waits take a deadline.
@safe
package final class ConditionLock: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the condition variable is only used with `lock`.
    @usableFromInline let storage = Lock()
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    package init() {
        unsafe condition = UnsafeMutablePointer.allocate(capacity: 1)
        unsafe condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        unsafe pthread_condattr_init(&attributes)
        unsafe pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        let rc = unsafe pthread_cond_init(condition, &attributes)
        unsafe pthread_condattr_destroy(&attributes)
        precondition(rc == 0, "pthread_cond_init: \(rc)")
    }

    deinit {
        unsafe pthread_cond_destroy(condition)
        unsafe condition.deallocate()
    }

    @inlinable
    package func lock() { storage.lock() }

    @inlinable
    package func unlock() { storage.unlock() }

    /// Takes the lock if it is free; returns whether it did. Never blocks.
    package func tryLock() -> Bool { storage.tryLock() }

    @inlinable
    package func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        storage.lock()
        defer { storage.unlock() }
        return try body()
    }

    /// Wakes every waiter. Call with or without the lock held.
    package func wakeAll() { unsafe pthread_cond_broadcast(condition) }

    /// Waits, with the lock held, until `done()` is true or the deadline passes.
    /// Returns `done()`'s final value.
    package func waitLocked(until deadline: Deadline = .never, _ done: () -> Bool) -> Bool {
        while !done() {
            if deadline.isNever {
                let rc = unsafe pthread_cond_wait(condition, storage.mutex)
                precondition(rc == 0, "pthread_cond_wait: \(rc)")
            } else {
                var ts = deadline.timespec
                let rc = unsafe pthread_cond_timedwait(condition, storage.mutex, &ts)
                if rc == ETIMEDOUT { return done() }
                precondition(rc == 0, "pthread_cond_timedwait: \(rc)")
            }
        }
        return true
    }

    /// Takes the lock and waits until `done()` is true or the deadline passes.
    package func wait(until deadline: Deadline = .never, _ done: () -> Bool) -> Bool {
        withLock { waitLocked(until: deadline, done) }
    }
}
