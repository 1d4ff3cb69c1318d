import Glibc

/// A pthread mutex: the library's own short internal lock (the kernel's raw spinlock).
///
/// Holders never sleep and never call out to user code while holding it, so it is not
/// checked by the atomic-context checker. It is a pthread mutex rather than
/// `Synchronization.Mutex` because ThreadSanitizer understands pthread mutexes, and does
/// not see `Mutex`'s contended path.
@safe
@usableFromInline
package final class Lock: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the pthread mutex is the synchronization; it lives at a
    // fixed heap address from init to deinit and is only touched through pthread calls.
    @usableFromInline package let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        unsafe mutex = UnsafeMutablePointer.allocate(capacity: 1)
        unsafe mutex.initialize(to: pthread_mutex_t())
        let rc = unsafe pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init: \(rc)")
    }

    deinit {
        let rc = unsafe pthread_mutex_destroy(mutex)
        precondition(rc == 0, "pthread_mutex_destroy: \(rc)")
        unsafe mutex.deallocate()
    }

    @inlinable
    package func lock() {
        let rc = unsafe pthread_mutex_lock(mutex)
        precondition(rc == 0, "pthread_mutex_lock: \(rc)")
    }

    @inlinable
    package func unlock() {
        let rc = unsafe pthread_mutex_unlock(mutex)
        precondition(rc == 0, "pthread_mutex_unlock: \(rc)")
    }

    @inlinable
    package func tryLock() -> Bool { unsafe pthread_mutex_trylock(mutex) == 0 }

    @inlinable
    package func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A value behind a `Lock`.
package final class LockedValue<Value>: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `value` is only read or written inside `lock`.
    private let lock = Lock()
    private var value: Value

    package init(_ value: Value) { self.value = value }

    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// A lock and a condition variable: threads sleep until a predicate on state they share
/// becomes true (the kernel's wait queue). Waits take a deadline.
@safe
package final class WaitQueue: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the condition variable is only used with `lock`.
    package let lock = Lock()
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

    /// Wakes every waiter. Call with or without `lock` held.
    package func wakeAll() { unsafe pthread_cond_broadcast(condition) }

    /// Waits, with `lock` held, until `done()` is true or the deadline passes.
    /// Returns `done()`'s final value.
    package func waitLocked(until deadline: Deadline = .never, _ done: () -> Bool) -> Bool {
        while !done() {
            if deadline.isNever {
                let rc = unsafe pthread_cond_wait(condition, lock.mutex)
                precondition(rc == 0, "pthread_cond_wait: \(rc)")
            } else {
                var ts = deadline.timespec
                let rc = unsafe pthread_cond_timedwait(condition, lock.mutex, &ts)
                if rc == ETIMEDOUT { return done() }
                precondition(rc == 0, "pthread_cond_timedwait: \(rc)")
            }
        }
        return true
    }

    /// Takes the lock and waits until `done()` is true or the deadline passes.
    package func wait(until deadline: Deadline = .never, _ done: () -> Bool) -> Bool {
        lock.withLock { waitLocked(until: deadline, done) }
    }
}
