import Glibc

/// A condition variable waited on with a `Lock` it does not own (the kernel's wait queue
/// beside a raw spinlock): several conditions can share one lock, so one thread can wake
/// exactly the sleeper it chose. Timed waits use `CLOCK_MONOTONIC`.
///
/// The workqueue's workers and its timer thread sleep on one each, under the workqueue lock.
@safe
package final class Condition: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the condition variable lives at a fixed heap address from
    // init to deinit and is only touched through pthread calls, always with the same lock.
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

    /// Sleeps until signalled (or spuriously woken), with `lock` held on entry and on return.
    package func wait(_ lock: Lock) {
        let rc = unsafe pthread_cond_wait(condition, lock.mutex)
        precondition(rc == 0, "pthread_cond_wait: \(rc)")
    }

    /// Sleeps until signalled, spuriously woken or `deadline` passes, with `lock` held on
    /// entry and on return. Returns false if the deadline passed.
    package func wait(_ lock: Lock, until deadline: Deadline) -> Bool {
        if deadline.isNever {
            wait(lock)
            return true
        }
        var ts = deadline.timespec
        let rc = unsafe pthread_cond_timedwait(condition, lock.mutex, &ts)
        if rc == ETIMEDOUT { return false }
        precondition(rc == 0, "pthread_cond_timedwait: \(rc)")
        return true
    }

    /// Wakes one sleeper. Call with or without the lock held.
    package func signal() { unsafe pthread_cond_signal(condition) }

    /// Wakes every sleeper. Call with or without the lock held.
    package func broadcast() { unsafe pthread_cond_broadcast(condition) }
}
