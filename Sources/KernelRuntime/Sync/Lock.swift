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

    /// Takes the lock if it is free; returns whether it did. Never blocks.
    @inlinable
    package func tryLock() -> Bool {
        unsafe pthread_mutex_trylock(mutex) == 0
    }

    @inlinable
    package func unlock() {
        let rc = unsafe pthread_mutex_unlock(mutex)
        precondition(rc == 0, "pthread_mutex_unlock: \(rc)")
    }

    @inlinable
    package func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}
