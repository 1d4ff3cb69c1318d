/// Whether the calling code runs in a Swift task, on a thread of the concurrency pool.
///
/// The pool has as many threads as CPUs and does not start more when one blocks: a wait
/// there (a grace period, a running handler, a lock held by a reader) takes a CPU's worth
/// of async work out of the process until it ends, and if what it waits for is itself
/// queued behind it on the pool, it never ends. So irqemu's teardowns that would wait
/// (the last reference to a `Devres`, a registration or a controller) hand the waiting part
/// to a runtime thread when they run in a task, as they do in atomic context, and a
/// read-side guard, which belongs to the thread that took it, is refused there: a task may
/// resume on another thread after a suspension.
package enum TaskContext {
    /// Whether the calling code runs in a task (sync code called from async code included).
    /// Costs a call into the Swift runtime (a thread-local load).
    package static var isInTask: Bool {
        // SAFETY: the task handle is only compared with nil, never kept or used.
        unsafe withUnsafeCurrentTask { unsafe $0 != nil }
    }
}
