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

    /// A wait that can end only after the calling work item returns, reported as lockdep
    /// reports the kernel's workqueue lockdep maps (`(wq_completion)NAME`, taken around every
    /// item of the queue; `(work_completion)(&item)`, around the item), and returned as the
    /// refusal to throw.
    ///
    /// The one place a self-wait is reported: the lock validator will produce this report
    /// from its own graph and replace this function.
    static func selfWait(
        function: String, acquiring: String, worker: Worker, reason: String, log: KernelLog?, file: StaticString, line: UInt
    ) -> WorkqueueError {
        let task = "\(worker.name)/\(ThreadState.tid)"
        let heldWork = worker.current?.lockdepName ?? "(work_completion)(?)"
        let heldQueue = "(wq_completion)\(worker.currentPWQ?.queue.name ?? "?")"
        AtomicContext.warn(
            .warning,
            [
                "WARNING: possible recursive locking detected",
                "--------------------------------------------",
                "\(task) is trying to acquire lock:",
                " (\(acquiring)){+.+.}-{0:0}, at: \(function)",
                "",
                "but task is already holding lock:",
                " (\(acquiring)){+.+.}-{0:0}, at: process_one_work",
                "",
                "other info that might help us debug this:",
                " Possible unsafe locking scenario:",
                "",
                "       CPU0",
                "       ----",
                "  lock(\(acquiring));",
                "  lock(\(acquiring));",
                "",
                " *** DEADLOCK ***",
                "",
                " May be due to missing lock nesting notation",
                "",
                "2 locks held by \(task):",
                " #0: (\(heldQueue)){+.+.}-{0:0}, at: process_one_work",
                " #1: (\(heldWork)){+.+.}-{0:0}, at: process_one_work",
                "",
                "irqemu: \(reason); refused (EDEADLK)",
            ],
            function: function, log: log, file: "\(file)", line: line)
        return .wouldDeadlock(reason: reason)
    }
}
