import Glibc

/// A value behind a plain pthread mutex: the benchmark's own lock, so the mutex world's
/// pointer costs what the C baseline's does (`Synchronization.Mutex` is a
/// priority-inheritance futex on Linux, which hands off differently).
final class PthreadLocked<Value>: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `value` is only touched with `mutex` held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
