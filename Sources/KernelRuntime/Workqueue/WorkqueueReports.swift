/// The workqueue's reports, in the kernel's words where it has some.
enum WorkqueueReports {
    /// `__queue_work`: `WARN_ONCE(…, "workqueue: cannot queue %ps on wq %s\n", work->func,
    /// wq->name)` (6.3+; before, a bare `WARN_ON_ONCE` for draining only). Once per queue.
    static func cannotQueue(function: String, queue: String, log: KernelLog?) {
        AtomicContext.warn(
            .warning,
            [
                "workqueue: cannot queue \(function) on wq \(queue)",
                "WARNING: CPU: \(max(0, AtomicContext.cpu ?? 0)) PID: \(ThreadState.tid) at kernel/workqueue.c __queue_work",
            ],
            function: "__queue_work", log: log, file: #fileID, line: #line)
    }

    /// `WARN_ONCE(…, "workqueue: work disable count overflowed\n")` / `underflowed`.
    static func disableCount(overflowed: Bool, work: Work, file: StaticString, line: UInt) {
        AtomicContext.warn(
            .warning,
            [
                "workqueue: work disable count \(overflowed ? "overflowed" : "underflowed")",
                "WARNING: CPU: \(max(0, AtomicContext.cpu ?? 0)) PID: \(ThreadState.tid) at kernel/workqueue.c \(overflowed ? "work_offqp_disable" : "work_offqp_enable")",
                "irqemu: \(overflowed ? "disable" : "enable") of \(work.functionName) refused",
            ],
            function: overflowed ? "disableWork()" : "enableWork()", log: work.log, file: "\(file)", line: line)
    }

    /// `destroyQueue()` of a system queue: the kernel has no check (it would free the queue
    /// from under every user); irqemu refuses it.
    static func destroySystemQueue(_ name: String, log: KernelLog?, file: StaticString, line: UInt) {
        AtomicContext.warn(
            .warning,
            ["WARNING: destroy_workqueue(\(name)): a system workqueue cannot be destroyed; refused"],
            function: "destroyQueue()", log: log, file: "\(file)", line: line)
    }

    /// `destroyQueue()` with timers armed to queue on it: the kernel does not wait for them
    /// (they are not pending on the queue) and queues onto freed memory when they fire, which
    /// the notes say should at least say `cannot queue`. irqemu refuses the destroy.
    static func destroyWithArmedTimers(_ name: String, count: Int, log: KernelLog?, file: StaticString, line: UInt) {
        AtomicContext.warn(
            .warning,
            [
                "WARNING: destroy_workqueue(\(name)): \(count) delayed work timer(s) still armed to queue on it; refused",
                "irqemu: when they fire they would queue on a destroyed workqueue (workqueue: cannot queue … on wq \(name)); cancel them first (cancelDelayedWorkSync)",
            ],
            function: "destroyQueue()", log: log, file: "\(file)", line: line)
    }

    /// A wait that can end only after the calling work item returns: lockdep's report of
    /// the map it would take again (`(work_completion)(&item)`, held around the item's run,
    /// or `(wq_completion)NAME`, held around every item of the queue), from the validator's
    /// held locks, and the refusal to throw. The only report of a self-wait: the wait is
    /// refused before it is noted.
    static func selfWait(
        function: String, map: LockdepMap, instance: UInt? = nil, reason: String, log: KernelLog?,
        file: StaticString, line: UInt
    ) -> WorkqueueError {
        _ = Lockdep.recursiveLockingRefused(
            map, instance: instance, function: function, note: "irqemu: \(reason); refused (EDEADLK)", log: log,
            file: "\(file)", line: line)
        return .wouldDeadlock(reason: reason)
    }
}
