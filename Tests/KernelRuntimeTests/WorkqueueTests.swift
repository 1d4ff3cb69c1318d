import CSupport
import Foundation
import KernelRuntime
import RCU
import SystemPackage
import Synchronization
import TestSupport
import Testing

/// Workqueues: queueing, running, references, ordering, cancel and flush.
@Suite(.timeLimit(.minutes(1)))
struct WorkqueueTests {
    @Test func anItemRunsOnAKworkerInProcessContext() throws {
        let queue = try makeQueue("wq-basic")
        let seen = Box<(Bool, String?)>((false, nil))
        let job = Job("basic") { job in seen.set((Workqueue.currentWork === job.work, Workqueue.current?.name)) }
        #expect(queue.enqueue(job) == .queued)
        #expect(try Threads.onThread { try job.flushWork(timeout: .seconds(10)) } != nil)
        #expect(job.runCount == 1)
        #expect(job.threadNames.get().first?.hasPrefix("kworker/") == true)
        #expect(job.atomicInRun.load(ordering: .relaxed) == false, "process context")
        #expect(seen.get().0, "currentWork is the item")
        #expect(seen.get().1 == "wq-basic")
        #expect(Workqueue.currentWork == nil, "not a worker")
        #expect(try Threads.onThread { try job.flushWork() } == false, "idle: nothing to wait for")
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// The kernel's rust `Arc` enqueue: the first enqueue takes one reference; the second,
    /// while pending, takes nothing and says so; the run gives the reference back.
    @Test func aPendingItemIsQueuedOnceAndASecondEnqueueTakesNothing() throws {
        let queue = try Workqueue.ordered(name: "wq-dedupe")
        let gate = RunGate()
        let blocker = Job("blocker") { _ in gate.pass() }
        queue.enqueue(blocker)
        #expect(gate.waitUntilHeld(), "the ordered queue's one slot is busy: the next item waits")
        weak var weakJob: Job?
        let counts: (UInt, UInt, UInt, EnqueueResult, EnqueueResult) = {
            let job = Job("dedupe")
            weakJob = job
            let before = _getRetainCount(job)
            let first = queue.enqueue(job)
            let afterFirst = _getRetainCount(job)
            let second = queue.enqueue(job)
            return (before, afterFirst, _getRetainCount(job), first, second)
        }()
        #expect(counts.3 == .queued)
        #expect(counts.4 == .alreadyPending)
        #expect(counts.1 == counts.0 + 1, "exactly one reference taken by the queue")
        #expect(counts.2 == counts.1, "the second enqueue took nothing")
        #expect(weakJob != nil, "the queued item keeps its owner alive")
        #expect(weakJob?.work.isPending == true)
        gate.release()
        try Threads.onThread { try queue.flushQueue(timeout: .seconds(10)) }
        #expect(spin(upTo: 5) { weakJob == nil }, "the run gave the reference back: the owner is freed")
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// Queued again while it runs (here on another CPU's pool, where an idle worker waits):
    /// it is not run by that worker, but once more right after the current run.
    @Test func anItemQueuedWhileRunningRunsOnceMoreAfterNeverConcurrently() throws {
        let queue = try makeQueue("wq-reentry", maxActive: 8)
        let gate = RunGate()
        let job = Job("reentrant") { job in if job.runCount == 0 { gate.pass() } }
        let lastCPU = Workqueue.cpuCount - 1
        #expect(queue.queueOn(cpu: 0, job) == .queued)
        #expect(gate.waitUntilHeld())
        #expect(job.work.isRunning && !job.work.isPending)
        #expect(queue.queueOn(cpu: lastCPU, job) == .queued, "running is not pending: queued again")
        #expect(queue.queueOn(cpu: 0, job) == .alreadyPending)
        // A second worker starting it now would be a concurrent run.
        #expect(!spin(upTo: 0.05) { job.running.load(ordering: .sequentiallyConsistent) > 1 })
        gate.release()
        try Threads.onThread { try queue.flushQueue(timeout: .seconds(10)) }
        #expect(job.runCount == 2, "once more after the run, not twice")
        #expect(job.overlapped.load(ordering: .relaxed) == false)
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// Four producers queue on an ordered queue at once: one item runs at a time, and each
    /// producer's items run in the order it queued them.
    @Test func anOrderedQueueRunsOneItemAtATimeInQueueingOrder() throws {
        let queue = try Workqueue.ordered(name: "wq-ordered")
        let producers = 4
        let perProducer = Scale.iterations(300, tsan: 40)
        let order = Box<[(Int, Int)]>([])
        let running = Atomic<Int>(0)
        let overlapped = Atomic<Bool>(false)
        let items = (0..<producers).map { p in
            (0..<perProducer).map { i in
                Job("p\(p)-\(i)") { _ in
                    if running.add(1, ordering: .sequentiallyConsistent).newValue > 1 { overlapped.store(true, ordering: .relaxed) }
                    order.update { $0.append((p, i)) }
                    running.subtract(1, ordering: .sequentiallyConsistent)
                }
            }
        }
        Threads.run(producers, name: "producer") { p in
            for i in 0..<perProducer { #expect(queue.enqueue(items[p][i]) == .queued) }
        }
        try Threads.onThread { try queue.flushQueue(timeout: .seconds(30)) }
        let ran = order.get()
        #expect(ran.count == producers * perProducer)
        #expect(overlapped.load(ordering: .relaxed) == false, "one at a time")
        for p in 0..<producers {
            #expect(ran.filter { $0.0 == p }.map(\.1) == Array(0..<perProducer), "producer \(p)'s items in its order")
        }
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// `maxActive` bounds the items running at once; the others wait, inactive, in order.
    @Test func maxActiveBoundsTheItemsRunningAtOnce() throws {
        let queue = try makeQueue("wq-max2", flags: .unbound, maxActive: 2)
        let running = Atomic<Int>(0), peak = Atomic<Int>(0)
        let jobs = (0..<8).map { i in
            Job("j\(i)") { _ in
                let now = running.add(1, ordering: .sequentiallyConsistent).newValue
                _ = peak.max(now, ordering: .sequentiallyConsistent)
                usleep(2_000)
                running.subtract(1, ordering: .sequentiallyConsistent)
            }
        }
        for job in jobs { queue.enqueue(job) }
        try Threads.onThread { try queue.flushQueue(timeout: .seconds(10)) }
        #expect(peak.load(ordering: .relaxed) == 2)
        #expect(jobs.allSatisfy { $0.runCount == 1 })
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// Workers carry the kernel's names and exist once their queue does (before any item).
    @Test(.holdsHighPriorityKworkers) func workersAreNamedAsTheKernelNamesThemAndStartWithTheirQueue() throws {
        let perCPU = try makeQueue("wq-names")
        let high = try makeQueue("wq-names-h", flags: .highPri)
        let unbound = try makeQueue("wq-names-u", flags: .unbound)
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        let names = Set(tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        #expect(names.contains("kworker/0:0") && names.contains("kworker/0:1"))
        #expect(names.contains("kworker/0:0H"))
        #expect(names.contains { $0.hasPrefix("kworker/u") && $0.hasSuffix(":0") })
        #expect(names.contains("ktimers/0"))
        let job = Job("names")
        #expect(high.queueOn(cpu: 0, job) == .queued)
        _ = try Threads.onThread { try job.flushWork(timeout: .seconds(10)) }
        #expect(job.threadNames.get().last?.hasPrefix("kworker/0:") == true && job.threadNames.get().last?.hasSuffix("H") == true)
        #expect(unbound.enqueue(job) == .queued)
        _ = try Threads.onThread { try job.flushWork(timeout: .seconds(10)) }
        #expect(job.threadNames.get().last?.hasPrefix("kworker/u") == true)
        #expect(perCPU.queueOn(cpu: Workqueue.cpuCount, job) == .refused, "no such CPU")
        try Threads.onThread {
            try perCPU.destroyQueue()
            try high.destroyQueue()
            try unbound.destroyQueue()
        }
    }

    /// Enqueue inside a read-side section (atomic context): never sleeps, takes exactly one
    /// reference, and the item runs after. (Allocations on this path are counted by
    /// irqbench's malloc interposer, which a test process cannot carry.)
    @Test func enqueueFromAReadSectionTakesOneReferenceAndRuns() throws {
        let queue = try Workqueue.ordered(name: "wq-read-section")
        let gate = RunGate()
        queue.enqueue(Job("blocker") { _ in gate.pass() })
        #expect(gate.waitUntilHeld())
        let job = Job("from-rcu")
        let result = Threads.onThread { () -> (EnqueueResult, UInt, UInt, Bool) in
            let before = _getRetainCount(job)
            let (outcome, atomic) = RCU.read { (queue.enqueue(job), AtomicContext.isAtomic) }
            return (outcome, before, _getRetainCount(job), atomic)
        }
        #expect(result?.0 == .queued)
        #expect(result?.3 == true, "it was queued in atomic context")
        #expect(result.map { $0.2 == $0.1 + 1 } == true, "one reference")
        #expect(job.work.isPending)
        gate.release()
        #expect(try Threads.onThread { try job.flushWork(timeout: .seconds(10)) } != nil)
        #expect(job.runCount == 1)
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// A non-sync cancel in atomic context takes the item back but leaves its reference to a
    /// worker: the owner is never released in a read-side section or a hard-IRQ handler.
    @Test func cancelInAtomicContextGivesTheReferenceBackOnAWorker() throws {
        let queue = try Workqueue.ordered(name: "wq-cancel-atomic")
        let gate = RunGate()
        queue.enqueue(Job("blocker") { _ in gate.pass() })
        #expect(gate.waitUntilHeld())
        let job = Job("cancelled")
        let result = Threads.onThread { () -> (Bool, UInt, UInt, UInt) in
            let before = _getRetainCount(job)
            queue.enqueue(job)
            let queued = _getRetainCount(job)
            let cancelled = RCU.read { job.cancelWork() }
            return (cancelled, before, queued, _getRetainCount(job))
        }
        #expect(result?.0 == true, "it was pending")
        #expect(result.map { $0.2 == $0.1 + 1 } == true)
        #expect(result.map { $0.3 == $0.2 } == true, "not given back inside the read section")
        #expect(!job.work.isPending)
        gate.release()
        try Threads.onThread { try queue.flushQueue(timeout: .seconds(10)) }
        let before = result?.1 ?? 0
        #expect(spin(upTo: 5) { _getRetainCount(job) == before }, "a worker gave it back")
        #expect(job.runCount == 0)
        #expect(job.cancelWork() == false, "not pending any more")
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// After `cancelWorkSync` returns, an item that queues itself again from its run is
    /// neither pending nor running, and never runs again; after `disableWorkSync`, the same,
    /// though another thread keeps queueing it.
    @Test(arguments: [false, true])
    func noRunStartsAfterASyncCancelReturns(disable: Bool) throws {
        let queue = try makeQueue("wq-sync-\(disable)")
        let returned = Atomic<Bool>(false)
        let lateRuns = Atomic<Int>(0)
        let job = Job("self-requeue") { job in
            if returned.load(ordering: .sequentiallyConsistent) { lateRuns.add(1, ordering: .relaxed) }
            queue.enqueue(job)
        }
        let stop = Atomic<Bool>(false)
        let refusedAfter = Atomic<Int>(0)
        let queuer = try KThread(name: "queuer") {
            while !stop.load(ordering: .relaxed) {
                let result = queue.enqueue(job)
                if returned.load(ordering: .sequentiallyConsistent) && result == .queued { lateRuns.add(1000, ordering: .relaxed) }
                if result == .disabled && returned.load(ordering: .sequentiallyConsistent) { refusedAfter.add(1, ordering: .relaxed) }
                sched_yield()
            }
        }
        if !disable { stop.store(true, ordering: .relaxed) }
        queue.enqueue(job)
        #expect(spin(upTo: 5) { job.runCount > 50 })
        let wasPending = try Threads.onThread { try disable ? job.disableWorkSync() : job.cancelWorkSync() }
        returned.store(true, ordering: .sequentiallyConsistent)
        #expect(wasPending != nil)
        #expect(!job.work.isPending && !job.work.isRunning)
        let runs = job.runCount
        try Deadline.after(.milliseconds(30)).sleep()
        stop.store(true, ordering: .relaxed)
        try queuer.join()
        #expect(job.runCount == runs, "no run after the call returned")
        #expect(lateRuns.load(ordering: .relaxed) == 0)
        #expect(job.work.isDisabled == disable)
        if disable {
            #expect(refusedAfter.load(ordering: .relaxed) > 0, "the other thread's enqueues were refused")
            #expect(job.enableWork())
        }
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// `disableWork` nests; an unbalanced `enableWork` is reported and changes nothing.
    @Test func disableNestsAndAnUnbalancedEnableIsReported() throws {
        let log = KernelLog(name: "enable")
        let queue = try makeQueue("wq-disable")
        let job = Job("disabled", log: log)
        #expect(job.disableWork() == false)
        #expect(job.disableWork() == false)
        #expect(queue.enqueue(job) == .disabled)
        #expect(job.enableWork() == false, "still disabled once")
        #expect(queue.enqueue(job) == .disabled)
        #expect(job.enableWork() == true)
        #expect(job.enableWork() == false, "underflow")
        #expect(log.reports.map(\.headline) == ["workqueue: work disable count underflowed"])
        #expect(queue.enqueue(job) == .queued)
        _ = try Threads.onThread { try job.flushWork(timeout: .seconds(10)) }
        #expect(job.runCount == 1)
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// flushWork waits for the last queued instance only: the pending one, else the running
    /// one; it reports whether it waited.
    @Test func flushWorkWaitsForTheLastQueuedInstance() throws {
        let queue = try makeQueue("wq-flush")
        let gate = RunGate()
        let job = Job("flushed") { job in if job.runCount == 0 { gate.pass() } }
        queue.enqueue(job)
        #expect(gate.waitUntilHeld())
        queue.enqueue(job)  // pending behind its own run
        let flusher = try KThread(name: "flusher") { _ = try? job.flushWork(timeout: .seconds(10)) }
        #expect(!spin(upTo: 0.02) { flusher.isFinished }, "waits while the instances are unfinished")
        gate.release()
        try flusher.join(timeout: .seconds(10))
        #expect(job.runCount == 2, "both instances ran before flushWork returned")
        let timedOut = Threads.onThread { () -> WorkqueueError? in
            let gate2 = RunGate()
            let slow = Job("slow") { _ in gate2.pass() }
            queue.enqueue(slow)
            _ = gate2.waitUntilHeld()
            defer { gate2.release() }
            return caught(WorkqueueError.self) { try slow.flushWork(timeout: .milliseconds(10)) }
        }
        if case .timedOut? = timedOut {} else { Issue.record("expected timedOut, got \(String(describing: timedOut))") }
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// The sync calls are sleeping calls: refused in atomic context, changing nothing.
    @Test func syncCallsAreRefusedInAtomicContext() throws {
        let log = KernelLog(name: "atomic-sync")
        let queue = try makeQueue("wq-atomic-sync")
        let job = Job("atomic")
        let errors = Threads.onThread { () -> [WorkqueueError?] in
            KernelLog.withCurrent(log) {
                RCU.read {
                    [
                        caught(WorkqueueError.self) { try job.cancelWorkSync() },
                        caught(WorkqueueError.self) { try job.disableWorkSync() },
                        caught(WorkqueueError.self) { try job.flushWork() },
                        caught(WorkqueueError.self) { try queue.flushQueue() },
                        caught(WorkqueueError.self) { try queue.drainQueue() },
                        caught(WorkqueueError.self) { try queue.destroyQueue() },
                    ]
                }
            }
        }
        #expect(errors?.count == 6)
        for error in errors ?? [] {
            if case .atomicContext? = error {} else { Issue.record("expected atomicContext, got \(String(describing: error))") }
        }
        #expect(log.reports(.sleepInAtomic).count == 6)
        #expect(!job.work.isDisabled, "nothing changed")
        #expect(queue.enqueue(job) == .queued)
        _ = try Threads.onThread { try job.flushWork(timeout: .seconds(10)) }
        try Threads.onThread { try queue.destroyQueue() }
    }
}
