import KernelRuntime
import Synchronization
import TestSupport
import Testing

/// The waits of the workqueue, each a wait on the locks the items take.
enum WorkWait: String, CaseIterable, Sendable {
    case flushWork, flushDelayedWork, cancelWorkSync, cancelDelayedWorkSync, disableWorkSync
    case flushQueue, drainQueue, destroyQueue

    var isDelayed: Bool { self == .flushDelayedWork || self == .cancelDelayedWorkSync }
    /// Whether it waits on the queue's map rather than the item's.
    var isQueueWait: Bool { self == .flushQueue || self == .drainQueue || self == .destroyQueue }
}

/// The workqueue's lockdep maps: every wait for work items is a wait on the locks they take,
/// reported as a circular dependency when made under such a lock, whichever was seen first
/// (the item's run or the wait) and whether or not the item was pending at the wait: the
/// deadlock never happens.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct WorkqueueLockdepTests {
    /// One scenario: an item (on its own queue) takes `lock`; the wait is made with `lock`
    /// held (`underLock`) or not. `runFirst`: the item has run once before the wait (the
    /// report comes at the wait); else the wait comes first, while the item is idle, and the
    /// report at the item's next run.
    private func scenario(_ wait: WorkWait, underLock: Bool, runFirst: Bool) throws -> [KernelReport] {
        let log = KernelLog(name: "wq-lockdep")
        let lock = SleepingMutex(0, key: LockClassKey("wq-test->lock"))
        let queue = try Workqueue(name: "wq-ld", log: log, lockClass: LockClassKey("(wq_completion)wq-ld"))
        let takeLock: @Sendable () -> Void = { _ = try? lock.withLock { $0 += 1 } }
        let plain = Job("ld-plain", log: log) { _ in takeLock() }
        let delayed = DelayedJob("ld-delayed", log: log) { _ in takeLock() }
        let enqueueAndFlush: @Sendable () -> Void = {
            if wait.isDelayed {
                queue.enqueue(delayed)
                _ = try? delayed.flushDelayedWork()
            } else {
                queue.enqueue(plain)
                _ = try? plain.flushWork()
            }
        }
        let theWait: @Sendable () -> Void = {
            switch wait {
            case .flushWork: _ = try? plain.flushWork()
            case .flushDelayedWork: _ = try? delayed.flushDelayedWork()
            case .cancelWorkSync: _ = try? plain.cancelWorkSync()
            case .cancelDelayedWorkSync: _ = try? delayed.cancelDelayedWorkSync()
            case .disableWorkSync:
                _ = try? plain.disableWorkSync()
                plain.enableWork()
            case .flushQueue: try? queue.flushQueue()
            case .drainQueue: try? queue.drainQueue()
            case .destroyQueue: break  // below, once the item has run
            }
        }
        run("ld-wq", log) {
            if runFirst { enqueueAndFlush() }
            if underLock { _ = try? lock.withLock { _ in theWait() } } else { theWait() }
            if !runFirst { enqueueAndFlush() }
            if wait == .destroyQueue {
                if underLock { _ = try? lock.withLock { _ in try? queue.destroyQueue() } } else { try? queue.destroyQueue() }
            } else {
                try? queue.destroyQueue()
            }
        }
        #expect(plain.runCount + delayed.runCount == 1, "the item ran once, and nothing deadlocked")
        return log.reports
    }

    @Test(arguments: WorkWait.allCases, [true, false])
    func aWaitUnderALockTheItemTakesIsACircularDependency(wait: WorkWait, runFirst: Bool) throws {
        // destroyQueue is the last thing done to a queue: the item always ran before it.
        guard wait != .destroyQueue || runFirst else { return }
        try LockdepGate.run {
            let reports = try scenario(wait, underLock: true, runFirst: runFirst)
            #expect(reports.map(\.headline) == ["WARNING: possible circular locking dependency detected"], "\(reports.map(\.lines))")
            let lines = reports.first?.lines ?? []
            // A class is named after the first `Work` made at its site (`Job`'s and
            // `DelayedJob`'s sites are shared with other tests).
            let map = wait.isQueueWait ? "(wq_completion)wq-ld" : wait.isDelayed ? DelayedJob().work.lockdepMap.name : Job().work.lockdepMap.name
            #expect(lines.contains { $0.contains("(\(map)){") }, "names the map waited on: \(lines)")
            #expect(lines.contains { $0.contains("(wq-test->lock){") })
            #expect(Lockdep.statistics.count(.circular) == 1)
        }
    }

    /// The twins: the same waits outside the lock are silent.
    @Test(arguments: WorkWait.allCases, [true, false])
    func theSameWaitOutsideTheLockIsSilent(wait: WorkWait, runFirst: Bool) throws {
        guard wait != .destroyQueue || runFirst else { return }
        try LockdepGate.run {
            let reports = try scenario(wait, underLock: false, runFirst: runFirst)
            #expect(reports.isEmpty, "\(reports.map(\.lines))")
        }
    }

    /// A flush of another item on an ordered queue from one of its items waits on the queue's
    /// map (the queue runs one item at a time): under a lock that an item of the queue takes,
    /// that is circular too. On a queue that runs items concurrently it is not.
    @Test(arguments: [true, false])
    func flushingAPendingItemOfAnOrderedQueueWaitsOnTheQueue(ordered: Bool) throws {
        try LockdepGate.run {
            let log = KernelLog(name: "wq-ordered-ld")
            let lock = SleepingMutex(0, key: LockClassKey("wq-test->ordered-lock"))
            let key = LockClassKey("(wq_completion)wq-ord-\(ordered)")
            let queue = try ordered
                ? Workqueue.ordered(name: "wq-ord", log: log, lockClass: key)
                : Workqueue(name: "wq-ord", log: log, lockClass: key)
            // Each its own `Work` creation site, so its own class (`Job`'s are one class).
            let taker = SiteJob.taker(log: log) { _ = try? lock.withLock { $0 += 1 } }
            let gate = RunGate()
            let blocker = SiteJob.blocker(log: log) { gate.pass() }
            let other = SiteJob.other(log: log) {}
            run("ld-ord", log) {
                queue.enqueue(taker)
                _ = try? taker.flushWork()
                // `other` pending behind a running blocker when the flush is made.
                queue.enqueue(blocker)
                _ = gate.waitUntilHeld()
                queue.enqueue(other)
                let flusher = try? KThread(name: "ld-flusher") {
                    KernelLog.withCurrent(log) { _ = try? lock.withLock { _ in try? other.flushWork(timeout: .seconds(10)) } }
                }
                _ = spin(upTo: 5) { Lockdep.statistics.count(.circular) > 0 || (!ordered && other.runs.load(ordering: .relaxed) > 0) }
                gate.release()
                try? flusher?.join(timeout: .seconds(10))
                try? queue.destroyQueue()
            }
            if ordered {
                #expect(log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
                #expect(log.reports.first?.lines.contains { $0.contains("((wq_completion)wq-ord){") } == true)
            } else {
                #expect(log.reports.isEmpty, "\(log.reports.map(\.lines))")
            }
        }
    }
}

/// A work item made by one of three factories, each with its own `Work` creation site.
final class SiteJob: WorkItem {
    let work: Work
    let runs = Atomic<Int>(0)
    let body: @Sendable () -> Void

    private init(work: Work, body: @escaping @Sendable () -> Void) {
        self.work = work
        self.body = body
    }

    static func taker(log: KernelLog, _ body: @escaping @Sendable () -> Void) -> SiteJob {
        SiteJob(work: Work(name: "taker", log: log), body: body)
    }
    static func blocker(log: KernelLog, _ body: @escaping @Sendable () -> Void) -> SiteJob {
        SiteJob(work: Work(name: "blocker", log: log), body: body)
    }
    static func other(log: KernelLog, _ body: @escaping @Sendable () -> Void) -> SiteJob {
        SiteJob(work: Work(name: "other", log: log), body: body)
    }

    func run() {
        body()
        runs.add(1, ordering: .relaxed)
    }
}
