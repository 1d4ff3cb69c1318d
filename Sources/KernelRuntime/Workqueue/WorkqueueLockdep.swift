/// Where the lock validator plugs into the workqueue, as the kernel's workqueue lockdep maps
/// do.
///
/// The maps, and their classes:
/// - a queue's map, `(wq_completion)NAME`, of the queue's creation site (or its
///   `lockClass`), one per queue;
/// - an item's map, `(work_completion)(&name)`, one per `Work` creation site (`INIT_WORK`'s
///   static key), each `Work` its instance.
///
/// A worker holds the queue's map, then the item's, around each run (`process_one_work`).
/// `flushWork`, `cancelWorkSync`, `disableWorkSync` and their delayed forms (unbind's managed
/// cancel among them) wait on the item's map, and also on the queue's when the queue runs
/// one item at a time and the item is on it; `flushQueue`, `drainQueue` and `destroyQueue`
/// wait on the queue's map. A wait under a lock the item takes is then a circular dependency
/// the validator reports, whether or not the item was pending at the time, without the
/// deadlock happening. Self-waits are refused before these waits are noted, and reported
/// once, by `WorkqueueReports.selfWait`, from the validator's held locks.
enum WorkqueueLockdep {
    /// The worker is about to run `work`, queued on `queue`: acquire the queue's map, then
    /// the item's.
    @inline(__always)
    static func willRun(_ work: Work, on queue: Workqueue) {
        guard Lockdep.isActive else { return }
        // Taken "at: process_one_work", as the kernel's reports say.
        Lockdep.acquire(queue.lockdepMap, function: "process_one_work", file: "process_one_work", line: 0, log: queue.log)
        unsafe Lockdep.acquire(
            work.lockdepMap, instance: work.lockdepInstance, function: "process_one_work", file: "process_one_work",
            line: 0, log: work.log ?? queue.log)
    }

    /// The run returned: release the item's map, then the queue's (nothing if they were not
    /// taken: the validator releases only what it holds).
    @inline(__always)
    static func didRun(_ work: Work, on queue: Workqueue) {
        unsafe Lockdep.release(work.lockdepMap, instance: work.lockdepInstance)
        Lockdep.release(queue.lockdepMap)
    }

    /// The caller is about to wait for `work` (flush, sync cancel or disable): acquire and
    /// release its map, and its queue's when `oneAtATime`.
    static func willWait(for work: Work, queue: Workqueue?, oneAtATime: Bool, function: StaticString, file: StaticString, line: UInt) {
        guard Lockdep.isActive else { return }
        unsafe Lockdep.acquire(work.lockdepMap, instance: work.lockdepInstance, function: function, file: file, line: line, log: work.log)
        unsafe Lockdep.release(work.lockdepMap, instance: work.lockdepInstance)
        if oneAtATime, let queue { willWait(for: queue, function: function, file: file, line: line) }
    }

    /// The caller is about to wait for `queue` (flush, drain, destroy): acquire and release
    /// its map.
    static func willWait(for queue: Workqueue, function: StaticString, file: StaticString, line: UInt) {
        guard Lockdep.isActive else { return }
        Lockdep.acquire(queue.lockdepMap, function: function, file: file, line: line, log: queue.log)
        Lockdep.release(queue.lockdepMap)
    }
}
