import CSupport
import Glibc
import SystemPackage

/// One kworker thread (the kernel's `struct worker`): takes items from its pool's worklist
/// and runs them in process context, under the checker.
///
/// An item is never run by two workers at once: a worker that takes an item another worker
/// is running hands it to that worker's `scheduled` list, and the other worker runs it
/// right after its current run (the kernel's `assign_work` collision rule, here across all
/// pools: an item queued on another CPU, or another queue, while it runs waits for the run).
@safe
final class Worker: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): immutable fields, `thread` written once in `start()`
    // before the worker is published; the rest guarded by `WorkqueueCore.lock` (`current`
    // and `currentPWQ` are also read without it, by the worker's own thread only).
    unowned(unsafe) private let _pool: WorkerPool
    /// The pool (pools are never freed).
    var pool: WorkerPool { unsafe _pool }
    let id: Int
    let name: String
    /// Where the worker sleeps, under the workqueue lock.
    let condition = Condition()
    /// Items that collided with this worker's current run, run next, in order.
    let scheduled = WorkList(holdsActive: true)
    var woken = false
    var isIdle = false
    var stopping = false
    // SAFETY: workers are never freed; `current` is alive while it runs here (its queue
    // reference), and `currentPWQ`'s queue cannot finish destroying while it runs.
    var nextIdle: Unmanaged<Worker>?
    unowned(unsafe) private var _current: Work?
    unowned(unsafe) private var _currentPWQ: PoolQueue?
    /// The item running now, and the queue-on-a-pool it was queued to.
    var current: Work? { get { unsafe _current } set { unsafe _current = newValue } }
    var currentPWQ: PoolQueue? { get { unsafe _currentPWQ } set { unsafe _currentPWQ = newValue } }
    private var thread: KThread?

    init(pool: WorkerPool, id: Int, name: String) {
        unsafe _pool = pool
        self.id = id
        self.name = name
    }

    /// Starts the thread; it is idle in its loop when this returns.
    func start(hostCPU: Int?) throws(Errno) {
        let ready = ConditionLock()
        let started = LockedValue(false)
        thread = try KThread(runtime: name) { [self] in
            if let hostCPU { _ = CSupport_pin_to_cpu(Int32(hostCPU)) }
            if pool.highPri { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(CSupport_gettid()), -20) }
            AtomicContext.setCPU(pool.cpu)
            unsafe WorkqueueCore.currentWorker.value = Unmanaged.passUnretained(self).toOpaque()
            loop(announce: {
                ready.withLock { started.withLock { $0 = true } }
                ready.wakeAll()
            })
        }
        // Not a checked wait: pools may be started from any thread (a system queue's first
        // use), and this wait is for a thread that never sleeps before it announces itself.
        _ = ready.wait { started.withLock { $0 } }
    }

    /// Stops the thread (only for a pool whose start failed: its workers are idle).
    func stop() {
        let core = WorkqueueCore.shared
        core.lock.withLock {
            stopping = true
            pool.removeIdleLocked(self)
            woken = true
        }
        condition.signal()
        try? thread?.join()
    }

    /// The worker running on the calling thread, if any.
    static var current: Worker? {
        guard let raw = unsafe WorkqueueCore.currentWorker.value else { return nil }
        // SAFETY: set by the worker's own thread for its whole life; workers are never freed.
        return unsafe Unmanaged<Worker>.fromOpaque(raw).takeUnretainedValue()
    }

    // MARK: - The loop

    private func loop(announce: () -> Void) {
        let core = WorkqueueCore.shared
        var announced = false
        core.lock.lock()
        while true {
            if let work = takeNextLocked() {
                let job = startLocked(work)
                core.lock.unlock()
                execute(job)
                core.lock.lock()
                continue
            }
            if stopping { break }
            pool.pushIdleLocked(self)
            if !announced {
                // Idle on the stack before the pool is published: an enqueue can wake it
                // (it pops it and sets `woken`, which the wait below sees).
                announced = true
                core.lock.unlock()
                announce()
                core.lock.lock()
            }
            while !woken { condition.wait(core.lock) }
            if stopping { break }
        }
        core.lock.unlock()
    }

    /// The next item for this worker: its scheduled list first, then the pool's worklist.
    /// An item another worker is running goes to that worker's scheduled list instead.
    /// Lock held.
    private func takeNextLocked() -> Work? {
        if let work = scheduled.popFirst() { return work }
        while let work = pool.worklist.popFirst() {
            if let other = work.runningOn {
                other.scheduled.append(work)
                continue
            }
            return work
        }
        return nil
    }

    /// What `execute` needs of an item taken off a list. The item and its pool share are
    /// alive while it runs (its queue reference, `owner`, is given back last).
    struct Job {
        let work: Work
        let pwq: PoolQueue
        let color: UInt64
        let owner: ItemReference
    }

    /// Marks `work` running on this worker (PENDING cleared: it may be queued again from
    /// now on, and will run once more after this run). Lock held.
    private func startLocked(_ work: Work) -> Job {
        let pwq = work.pwq!
        work.pending = false
        work.active = false
        work.pwq = nil
        work.runningOn = self
        work.runningSeq = work.queuedSeq
        work.runningColor = work.color
        pwq.queue.queued -= 1
        pwq.queue.running += 1
        current = work
        currentPWQ = pwq
        return Job(work: work, pwq: pwq, color: work.color, owner: work.owner!)
    }

    /// Runs the item, checks for leaked atomic context, then retires the run and gives the
    /// queue's reference back: last, since the owner (and its `Work`) may go with it.
    @inline(never)
    private func execute(_ job: Job) {
        let core = WorkqueueCore.shared
        let work = job.work, pwq = job.pwq
        let queue = pwq.queue
        do {
            // The queue's reference (`job.owner`) keeps the item alive while it runs.
            let item = work.item!
            WorkqueueLockdep.willRun(work, on: queue)
            // `Faults.workItem`: the item, taken off its list, starts late.
            FaultInjection.delay(.workItem) { $0.workItem }
            if let log = work.log ?? queue.log {
                KernelLog.withCurrent(log) { item.run() }
            } else {
                item.run()
            }
            if _slowPath(Self.leftAtomic) { reportLeak(item: item, log: work.log ?? queue.log) }
            WorkqueueLockdep.didRun(work, on: queue)
        }
        core.lock.lock()
        work.runningOn = nil
        current = nil
        currentPWQ = nil
        queue.running -= 1
        queue.executed += 1
        let wake = core.retireActiveLocked(pwq, color: job.color)
        core.lock.unlock()
        wake.signal()
        WaitVar.wakeUp(work)
        WaitVar.wakeUp(queue)
        // The queue's reference taken at the enqueue of the instance that just ran.
        job.owner.release()
    }

    // MARK: - The leak check

    /// Whether the thread is left in atomic context (a worker runs with none of it).
    private static var leftAtomic: Bool {
        ThreadState.preempt != 0 || ThreadState.irqsOff != 0 || ThreadState.hardIRQ != 0
            || ThreadState.softIRQ != 0 || CSupport_rcu_read_depth() != 0
    }

    /// `process_one_work`'s check after the function returns: reports, in the kernel's
    /// pre-6.10 words (`BUG: workqueue leaked lock or atomic`, the headline the issue quotes;
    /// 6.10+ prints `BUG: workqueue leaked atomic, lock or RCU`), then puts the worker back
    /// in process context so the next item is not refused every sleeping call: the counters
    /// the checker keeps are reset and leaked read-side sections ended (a worker left in
    /// one would block every grace period of the process).
    private func reportLeak(item: any WorkItem, log: KernelLog?) {
        let state = AtomicContext.state
        let function = "\(type(of: item)).run"
        AtomicContext.warn(
            .violation,
            [
                "BUG: workqueue leaked lock or atomic: \(ThreadState.name)/0x\(hex8(state.preemptCount))/\(ThreadState.tid)",
                "     last function: \(function)",
                "irqemu: left with \(state); the worker's context is reset",
            ],
            function: function, log: log, file: #fileID, line: #line)
        ThreadState.preempt = 0
        ThreadState.irqsOff = 0
        ThreadState.hardIRQ = 0
        ThreadState.softIRQ = 0
        while CSupport_rcu_read_depth() != 0 { CSupport_rcu_read_unlock() }
    }
}

/// `%08x`.
func hex8(_ value: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
