import CSupport
import Foundation
import KernelRuntime
import RCU
import SystemPackage
import Synchronization
import TestSupport
import Testing

/// The waits a work item may not make on itself, the drain and destroy rules, the leak
/// check after each run, and delayed work.
@Suite(.timeLimit(.minutes(1)))
struct WorkqueueRulesTests {
    // MARK: - Self-waits

    enum SelfWait: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case flushWork, cancelWorkSync, disableWorkSync, cancelDelayedWorkSync, flushDelayedWork
        case flushQueue, drainQueue, destroyQueue
        case flushOfAnItemBehindItOnAnOrderedQueue
        var testDescription: String { rawValue }
    }

    /// A wait that can end only after the calling item returns throws EDEADLK, changes
    /// nothing, and logs ONE report in lockdep's words naming the map it would wait on.
    @Test(arguments: SelfWait.allCases)
    func aWaitThatCanEndOnlyAfterTheCallingItemReturnsIsRefused(_ kind: SelfWait) throws {
        // The report lists the validator's held locks: no other test may reset it meanwhile.
        try LockdepGate.run { try selfWait(kind) }
    }

    private func selfWait(_ kind: SelfWait) throws {
        let log = KernelLog(name: "self-wait")
        let queue = try Workqueue.ordered(name: "wq-self", log: log)
        let outcome = Box<(WorkqueueError?, String)>((nil, ""))
        let behind = Job("behind")
        let job: any WorkItem
        switch kind {
        case .cancelDelayedWorkSync, .flushDelayedWork:
            job = DelayedJob("self") { job in
                if job.runCount > 0 { return }
                queue.queueDelayed(job, delay: .seconds(30))  // armed: the refused call must leave it so
                let error = caught(WorkqueueError.self) {
                    _ = kind == .flushDelayedWork ? try job.flushDelayedWork() : try job.cancelDelayedWorkSync()
                }
                outcome.set((error, "armed \(job.delayedWork.isTimerArmed) pending \(job.work.isPending)"))
            }
        default:
            job = Job("self") { job in
                if job.runCount > 0 { return }
                var after = ""
                let error = caught(WorkqueueError.self) {
                    switch kind {
                    case .flushWork: _ = try job.flushWork()
                    case .cancelWorkSync:
                        queue.enqueue(job)  // pending again: the refused cancel must leave it so
                        _ = try job.cancelWorkSync()
                    case .disableWorkSync: _ = try job.disableWorkSync()
                    case .flushQueue: try queue.flushQueue()
                    case .drainQueue: try queue.drainQueue()
                    case .destroyQueue: try queue.destroyQueue()
                    case .flushOfAnItemBehindItOnAnOrderedQueue:
                        queue.enqueue(behind)
                        _ = try behind.flushWork()
                    default: break
                    }
                }
                switch kind {
                case .cancelWorkSync: after = "pending \(job.work.isPending) disabled \(job.work.isDisabled)"
                case .disableWorkSync: after = "disabled \(job.work.isDisabled)"
                case .drainQueue, .destroyQueue: after = "draining \(queue.statistics.isDraining)"
                case .flushOfAnItemBehindItOnAnOrderedQueue: after = "pending \(behind.work.isPending)"
                default: break
                }
                outcome.set((error, after))
            }
        }
        let start = monotonicNanoseconds()
        if let delayed = job as? DelayedJob { queue.enqueue(delayed) } else if let plain = job as? Job { queue.enqueue(plain) }
        #expect(spin(upTo: 10) { outcome.get().0 != nil || !outcome.get().1.isEmpty })
        #expect(monotonicNanoseconds() - start < 5_000_000_000, "refused at once")
        let (error, after) = outcome.get()
        guard case .wouldDeadlock? = error else {
            Issue.record("expected wouldDeadlock, got \(String(describing: error))")
            return
        }
        #expect(error?.errno == .deadlock)
        // Nothing changed.
        switch kind {
        case .cancelWorkSync: #expect(after == "pending true disabled false")
        case .disableWorkSync: #expect(after == "disabled false")
        case .drainQueue, .destroyQueue: #expect(after == "draining false")
        case .flushOfAnItemBehindItOnAnOrderedQueue: #expect(after == "pending true")
        case .cancelDelayedWorkSync, .flushDelayedWork: #expect(after == "armed true pending true")
        default: break
        }
        // One report, in lockdep's words.
        let reports = log.reports
        #expect(reports.count == 1)
        let report = reports.first
        #expect(report?.headline == "WARNING: possible recursive locking detected")
        // The class of the item's map is its `Work`'s creation site, named after the first
        // `Work` made there.
        let workMap = job.work.lockdepMap.name
        let map: String
        switch kind {
        case .flushQueue, .drainQueue, .destroyQueue, .flushOfAnItemBehindItOnAnOrderedQueue: map = "(wq_completion)wq-self"
        default: map = workMap
        }
        let lines = report?.lines ?? []
        #expect(lines.contains { $0.contains("is trying to acquire lock:") && $0.hasPrefix("kworker/u") })
        #expect(lines.contains { $0.hasSuffix(" (\(map)){+.+.}-{0:0}, at: process_one_work") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix(" #0: ") && $0.hasSuffix(" ((wq_completion)wq-self){+.+.}-{0:0}, at: process_one_work") })
        #expect(lines.contains { $0.hasPrefix(" #1: ") && $0.hasSuffix(" (\(workMap)){+.+.}-{0:0}, at: process_one_work") })
        #expect(lines.last { $0.hasPrefix("irqemu: ") }?.hasSuffix("refused (EDEADLK)") == true)
        #expect(report?.lines.contains(" *** DEADLOCK ***") == true)
        // The queue goes on: cancel what is left, and destroy it.
        try Threads.onThread {
            if let delayed = job as? DelayedJob { try delayed.cancelDelayedWorkSync() } else { try (job as! Job).cancelWorkSync() }
            try queue.destroyQueue()
        }
    }

    // MARK: - Drain and destroy

    /// While a queue drains, its own items may queue on it (chained work); any other enqueue
    /// is reported once (`workqueue: cannot queue … on wq …`) and dropped; after the drain
    /// the queue takes items again.
    @Test func whileAQueueDrainsOnlyItsOwnItemsMayQueueOnIt() throws {
        let log = KernelLog(name: "drain")
        let queue = try makeQueue("wq-drain")
        let gate = RunGate()
        let chainResults = Box<[EnqueueResult]>([])
        let chain = Job("chain", log: log) { job in
            if job.runCount == 0 { gate.pass() }
            if job.runCount < 20 { chainResults.update { $0.append(queue.enqueue(job)) } }
        }
        let foreign = Job("foreign", log: log)
        queue.enqueue(chain)
        #expect(gate.waitUntilHeld())
        let drainer = try KThread(name: "drainer") { try? queue.drainQueue() }
        #expect(spin(upTo: 5) { queue.statistics.isDraining })
        let refused = KernelLog.withCurrent(log) { [queue.enqueue(foreign), queue.enqueue(foreign)] }
        #expect(refused == [.refused, .refused])
        #expect(!foreign.work.isPending, "dropped (the kernel leaves it PENDING forever)")
        gate.release()
        try drainer.join(timeout: .seconds(10))
        #expect(chain.runCount == 21, "chained enqueues were taken until the end")
        #expect(chainResults.get().allSatisfy { $0 == .queued })
        #expect(queue.statistics.pending == 0 && queue.statistics.running == 0, "drained")
        #expect(log.reports.map(\.headline) == ["workqueue: cannot queue Job.run on wq wq-drain"], "reported once")
        #expect(queue.enqueue(foreign) == .queued, "after the drain the queue takes items again")
        try Threads.onThread {
            _ = try foreign.flushWork(timeout: .seconds(10))
            try queue.destroyQueue()
        }
        #expect(foreign.runCount == 1)
    }

    /// destroyQueue drains the queue first; it refuses (reported) a queue with an armed
    /// timer, a system queue and a queue already destroyed; nothing is queued after it.
    @Test func destroyQueueDrainsAndRefusesArmedTimersSystemQueuesAndLaterEnqueues() throws {
        let log = KernelLog(name: "destroy")
        let queue = try makeQueue("wq-destroy", log: log)
        let delayed = DelayedJob("armed")
        #expect(queue.queueDelayed(delayed, delay: .seconds(30)) == .queued)
        let busy = Threads.onThread { caught(WorkqueueError.self) { try queue.destroyQueue() } }
        guard case .busy? = busy else {
            Issue.record("expected busy, got \(String(describing: busy))")
            return
        }
        #expect(log.reports.first?.headline == "WARNING: destroy_workqueue(wq-destroy): 1 delayed work timer(s) still armed to queue on it; refused")
        #expect(delayed.cancelDelayedWork(), "still armed: the refused destroy changed nothing")
        let slow = (0..<6).map { i in Job("slow\(i)") { _ in usleep(2_000) } }
        for job in slow { #expect(queue.enqueue(job) == .queued, "the queue still takes items") }
        try Threads.onThread { try queue.destroyQueue() }
        #expect(slow.allSatisfy { $0.runCount == 1 }, "destroy drained the queue first")
        let late = Job("late")
        #expect(KernelLog.withCurrent(log) { queue.enqueue(late) } == .refused)
        #expect(KernelLog.withCurrent(log) { queue.queueDelayed(delayed, delay: .milliseconds(1)) } == .refused)
        #expect(log.reports.last?.headline == "workqueue: cannot queue Job.run on wq wq-destroy")
        let again = Threads.onThread { caught(WorkqueueError.self) { try queue.destroyQueue() } }
        #expect(again == .destroyed(queue: "wq-destroy"))
        #expect(!Workqueue.all.contains { $0.name == "wq-destroy" }, "no longer registered")
        let systemLog = KernelLog(name: "system")
        let system = Threads.onThread { KernelLog.withCurrent(systemLog) { caught(WorkqueueError.self) { try Workqueue.system.destroyQueue() } } }
        #expect(system == .systemQueue(name: "events"))
        #expect(system??.errno == .notPermitted)
        #expect(systemLog.reports.map(\.headline) == ["WARNING: destroy_workqueue(events): a system workqueue cannot be destroyed; refused"])
        #expect(Workqueue.system.enqueue(late) == .queued, "the system queue still works")
        _ = try Threads.onThread { try late.flushWork(timeout: .seconds(10)) }
    }

    // MARK: - The leak check

    enum Leak: String, CaseIterable, Sendable { case spinlock, readSection, irqsOff }

    /// An item that returns holding a spinlock, inside a read section or with interrupts off
    /// is reported in the kernel's words; the worker is put back in process context (the
    /// next items run there, and grace periods are not blocked by the leaked section).
    @Test(arguments: Leak.allCases)
    func anItemThatReturnsInAtomicContextIsReported(_ leak: Leak) throws {
        let log = KernelLog(name: "leak")
        let queue = try Workqueue.ordered(name: "wq-leak", log: log)
        let leaky = Job("leaky") { _ in
            switch leak {
            case .spinlock: AtomicContext.preemptDisable()
            case .readSection: CSupport_rcu_read_lock()
            case .irqsOff: AtomicContext.irqsOffEnter()
            }
        }
        let after = (0..<16).map { Job("after\($0)") }
        queue.enqueue(leaky)
        for job in after { queue.enqueue(job) }
        try Threads.onThread { try queue.flushQueue(timeout: .seconds(10)) }
        let report = log.reports.first
        #expect(log.reports.count == 1)
        #expect(report?.kind == .violation)
        #expect(report?.headline.hasPrefix("BUG: workqueue leaked lock or atomic: kworker/u") == true)
        let preempt = leak == .spinlock ? "0x00000001" : "0x00000000"
        #expect(report?.headline.contains("/\(preempt)/") == true)
        #expect(report?.lines.dropFirst().first == "     last function: Job.run")
        #expect(after.allSatisfy { $0.runCount == 1 && $0.atomicInRun.load(ordering: .relaxed) == false }, "the next items ran in process context")
        if leak == .readSection {
            #expect(Threads.onThread(timeout: .seconds(10)) { (try? RCU.synchronize()) != nil } == true, "grace periods still end")
        }
        try Threads.onThread { try queue.destroyQueue() }
    }

    // MARK: - Delayed work

    /// An item that re-arms itself from its run: once cancelDelayedWorkSync returns, its
    /// timer is disarmed, it is neither pending nor running, and it never runs again. The
    /// cancel comes while a run is in progress, which re-arms the timer during the cancel.
    @Test func cancelDelayedWorkSyncStopsAnItemThatReArmsItself() throws {
        let queue = try makeQueue("wq-rearm")
        let rearms = Box<[EnqueueResult]>([])
        let gate = RunGate()
        let job = DelayedJob("rearm") { job in
            if job.runCount == 5 { gate.pass() }
            rearms.update { $0.append(queue.queueDelayed(job, delay: .microseconds(300))) }
        }
        queue.queueDelayed(job, delay: .microseconds(300))
        #expect(gate.waitUntilHeld(), "the sixth run is in progress")
        let canceller = try KThread(name: "canceller") { _ = try? job.cancelDelayedWorkSync() }
        #expect(spin(upTo: 5) { job.delayedWork.isDisabled }, "the cancel disabled it and waits for the run")
        gate.release()
        try canceller.join(timeout: .seconds(10))
        let runs = job.runCount
        #expect(runs == 6)
        #expect(!job.work.isPending && !job.work.isRunning && !job.delayedWork.isTimerArmed)
        try Deadline.after(.milliseconds(20)).sleep()  // 60 delays: a re-arm that got through would have run
        #expect(job.runCount == runs, "no run after it returned")
        #expect(!job.delayedWork.isDisabled, "enabled again")
        #expect(rearms.get().last == .disabled, "the re-arm during the cancel was refused")
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// A timer never fires before its delay; its lateness is recorded.
    @Test func aDelayedItemNeverRunsBeforeItsDelay() throws {
        let queue = try makeQueue("wq-delay")
        let before = Workqueue.timerLateness.fired
        for delay in [Duration.microseconds(50), .microseconds(200), .milliseconds(1), .milliseconds(3)] {
            for _ in 0..<5 {
                let ranAt = Atomic<UInt64>(0)
                let job = DelayedJob("delay") { _ in ranAt.store(monotonicNanoseconds(), ordering: .releasing) }
                let armedAt = monotonicNanoseconds()
                #expect(queue.queueDelayed(job, delay: delay) == .queued)
                #expect(spin(upTo: 5) { ranAt.load(ordering: .acquiring) != 0 })
                let waited = Duration.nanoseconds(Int64(ranAt.load(ordering: .acquiring) - armedAt))
                #expect(waited >= delay, "ran \(waited) after being armed for \(delay)")
            }
        }
        let lateness = Workqueue.timerLateness
        #expect(lateness.fired >= before + 20)
        #expect(lateness.p50 <= lateness.p99 && lateness.p99 <= lateness.max)
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// modDelayed re-arms a pending item (true) or queues an idle one (false);
    /// flushDelayedWork fires an armed timer at once and waits for the run.
    @Test func modDelayedAndFlushDelayedWork() throws {
        let queue = try makeQueue("wq-mod")
        let job = DelayedJob("mod")
        #expect(queue.modDelayed(job, delay: .seconds(30)) == false, "idle: queued")
        #expect(job.delayedWork.isTimerArmed)
        #expect(queue.modDelayed(job, delay: .seconds(60)) == true, "pending: re-armed")
        #expect(queue.queueDelayed(job, delay: .seconds(1)) == .alreadyPending)
        let start = monotonicNanoseconds()
        #expect(try Threads.onThread { try job.flushDelayedWork(timeout: .seconds(10)) } == true)
        #expect(monotonicNanoseconds() - start < 5_000_000_000, "fired at once")
        #expect(job.runCount == 1 && !job.work.isPending)
        #expect(queue.modDelayed(job, delay: .zero) == false, "delay 0: queued now")
        _ = try Threads.onThread { try job.flushWork(timeout: .seconds(10)) }
        #expect(job.runCount == 2)
        #expect(queue.queueDelayed(job, delay: .seconds(30)) == .queued)
        #expect(job.cancelDelayedWork() == true)
        #expect(job.cancelDelayedWork() == false)
        #expect(queue.statistics.armedTimers == 0)
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// A drain does not wait for armed timers; one that fires during it is refused
    /// (reported) and dropped, its reference given back on a worker. The timer must fire
    /// after the drain started: a run where it fired first (a loaded machine) is retried
    /// with a longer delay.
    @Test func aTimerFiringIntoADrainingQueueIsReportedAndDropped() throws {
        var valid = false
        for delay in [Duration.milliseconds(50), .milliseconds(400), .seconds(2)] where !valid {
            let log = KernelLog(name: "timer-drain")
            let queue = try makeQueue("wq-timer-drain", log: log)
            let gate = RunGate()
            queue.enqueue(Job("blocker") { _ in gate.pass() })
            #expect(gate.waitUntilHeld())
            weak var weakDelayed: DelayedJob?
            do {
                let delayed = DelayedJob("late-timer", body: nil)
                weakDelayed = delayed
                #expect(queue.queueDelayed(delayed, delay: delay) == .queued)
            }
            let drainer = try KThread(name: "drainer") { try? queue.drainQueue() }
            #expect(spin(upTo: 5) { queue.statistics.isDraining })
            valid = queue.statistics.armedTimers == 1
            #expect(spin(upTo: 5) { queue.statistics.armedTimers == 0 }, "the timer fired")
            gate.release()
            try drainer.join(timeout: .seconds(10))
            if valid {
                // The timer thread reports after it dropped the lock the statistics read.
                _ = spin(upTo: 5) { !log.reports.isEmpty }
                #expect(log.reports.map(\.headline) == ["workqueue: cannot queue DelayedJob.run on wq wq-timer-drain"])
                #expect(spin(upTo: 5) { weakDelayed == nil }, "dropped: its reference was given back")
            }
            try Threads.onThread { try queue.destroyQueue() }
        }
        #expect(valid, "the drain started before the timer fired in one of three runs")
    }
}
