import Glibc

/// One unretained pointer per thread, in a pthread key (`pthread_getspecific`: a few
/// nanoseconds, no lock, no allocation after the thread's first store).
///
/// For per-thread marks that the emulated kernel's C thread state (`ThreadState`) does not
/// carry: the worker a thread is (the workqueue's `current_work`). Whoever stores a pointer
/// keeps its object alive while it is stored.
@safe
package struct ThreadLocalPointer: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): a pthread key is a process-wide index; every thread reads
    // and writes only its own slot.
    private let key: pthread_key_t

    /// A new key. Keys are never deleted: make one per purpose, in a `static let`.
    package init() {
        var key = pthread_key_t()
        let rc = unsafe pthread_key_create(&key, nil)
        precondition(rc == 0, "pthread_key_create: \(rc)")
        self.key = key
    }

    /// The calling thread's pointer (nil until it stores one).
    @inline(__always)
    package var value: UnsafeMutableRawPointer? {
        get { unsafe pthread_getspecific(key) }
        nonmutating set { _ = unsafe pthread_setspecific(key, newValue) }
    }
}
