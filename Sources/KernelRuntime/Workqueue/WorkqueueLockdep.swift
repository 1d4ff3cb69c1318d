/// Where the lock validator plugs into the workqueue (issue 17 §3), as the kernel's
/// workqueue lockdep maps do. Today every function here does nothing; each call site is
/// where the validator's acquire, release or wait goes.
///
/// The maps, and their classes:
/// - a queue's map, `(wq_completion)NAME`, keyed by the queue's creation site
///   (`Workqueue.file`, `Workqueue.line`: `alloc_workqueue`'s static key);
/// - an item's map, `(work_completion)(&item)`, keyed by its `Work`'s creation site
///   (`Work.file`, `Work.line`: `INIT_WORK`'s static key).
///
/// A worker holds the queue's map, then the item's, around each run (`process_one_work`);
/// `flushWork`, `cancelWorkSync`, `disableWorkSync` and their delayed forms (unbind's managed
/// cancel among them) wait on the item's map, and also on the queue's when the queue runs
/// one item at a time; `flushQueue`, `drainQueue` and `destroyQueue` wait on the queue's map.
/// A wait under a lock the item takes is then a circular dependency the validator reports
/// without the deadlock happening. Self-waits are refused before these hooks run, and reported
/// by `WorkqueueReports.selfWait` (which the validator replaces, so there is one report).
enum WorkqueueLockdep {
    /// The worker is about to run `work`, queued on `queue`: acquire the queue's map, then
    /// the item's.
    @inline(__always)
    static func willRun(_ work: Work, on queue: Workqueue) {}

    /// The run returned: release the item's map, then the queue's.
    @inline(__always)
    static func didRun(_ work: Work, on queue: Workqueue) {}

    /// The caller is about to wait for `work` (flush, sync cancel or disable): acquire and
    /// release its map, and its queue's when `oneAtATime`.
    @inline(__always)
    static func willWait(for work: Work, queue: Workqueue?, oneAtATime: Bool) {}

    /// The caller is about to wait for `queue` (flush, drain, destroy): acquire and release
    /// its map.
    @inline(__always)
    static func willWait(for queue: Workqueue) {}
}
