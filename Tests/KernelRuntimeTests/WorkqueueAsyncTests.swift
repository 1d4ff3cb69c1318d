import Foundation
import KernelRuntime
import Synchronization
import TestSupport
import Testing

/// The async overloads of the workqueue's waits.
enum AsyncWorkWait: String, CaseIterable, Sendable {
    case flushWork, cancelWorkSync, disableWorkSync
    case flushDelayedWork, cancelDelayedWorkSync, disableDelayedWorkSync
    case flushQueue, drainQueue, destroyQueue

    var isDelayed: Bool { self == .flushDelayedWork || self == .cancelDelayedWorkSync || self == .disableDelayedWorkSync }
    /// Whether it waits on the queue's map rather than the item's.
    var isQueueWait: Bool { self == .flushQueue || self == .drainQueue || self == .destroyQueue }

    /// Awaits the async call on `plain`, `delayed` or `queue`.
    func perform(plain: Job, delayed: DelayedJob, queue: Workqueue) async throws(WorkqueueError) {
        switch self {
        case .flushWork: _ = try await plain.flushWork()
        case .cancelWorkSync: _ = try await plain.cancelWorkSync()
        case .disableWorkSync: _ = try await plain.disableWorkSync()
        case .flushDelayedWork: _ = try await delayed.flushDelayedWork()
        case .cancelDelayedWorkSync: _ = try await delayed.cancelDelayedWorkSync()
        case .disableDelayedWorkSync: _ = try await delayed.disableDelayedWorkSync()
        case .flushQueue: try await queue.flushQueue()
        case .drainQueue: try await queue.drainQueue()
        case .destroyQueue: try await queue.destroyQueue()
        }
    }
}

/// The `WorkqueueError` `body` threw, nil if it returned (or threw something else).
func caughtAsync(_ body: () async throws -> Void) async -> WorkqueueError? {
    do {
        try await body()
        return nil
    } catch {
        return error as? WorkqueueError
    }
}

/// Runs `body` in a task on a pool of one thread of its own, so that the task keeps its
/// thread across its suspensions (what it sets on the thread before an await is still set
/// after): for tests that put the calling thread in atomic context, give it a current log,
/// or hold a lock map around an await. Unstructured tasks made in `body` go to the same
/// thread with `Task(executorPreference: pool)`.
func onOwnThread<R: Sendable>(_ body: (FixedPool) async throws -> R) async throws -> R {
    let pool = try FixedPool(width: 1, name: "wq-async-own")
    let result: Result<R, any Error>
    do {
        result = .success(try await withTaskExecutorPreference(pool) { try await body(pool) })
    } catch {
        result = .failure(error)
    }
    try await BlockingPool.shared.run { try pool.stop() }
    return try result.get()
}

/// `KernelLog.withCurrent` around an await: only on a thread of the task's own
/// (`onOwnThread`), where it resumes after the suspension.
func withCurrentLog<R>(_ log: KernelLog, _ body: () async throws -> R) async rethrows -> R {
    let previous = ThreadState.log
    ThreadState.log = Unmanaged.passUnretained(log).toOpaque()
    defer { ThreadState.log = previous }
    return try await body()  // `log` is a parameter: alive until we return
}

/// The async overloads of `flushWork`, `cancelWorkSync`, `disableWorkSync`, their delayed
/// forms, `flushQueue`, `drainQueue` and `destroyQueue`: the blocking calls' guarantees,
/// errors and reports; the checks and state changes on the calling task; the waits on
/// irqemu's threads. Held runs are on high-priority queues (the system queues run on the
/// normal pools), one test at a time (the pools' workers are few and shared).
@Suite(.serialized, .holdsHighPriorityKworkers, .timeLimit(.minutes(2)))
struct WorkqueueAsyncTests {
    // MARK: - Items

    /// After `await cancelWorkSync()` (`disableWorkSync()`) returns, the held run has
    /// finished, the item is neither pending nor running, its re-enqueue from the run was
    /// refused, and it never runs again; `disableWorkSync` also refuses later enqueues.
    @Test(arguments: [false, true])
    func anAsyncSyncCancelWaitsForTheRunAndNoRunStartsAfter(disable: Bool) async throws {
        let queue = try makeQueue("wq-async-cancel-\(disable)", flags: .highPri)
        let gate = Gate("run", holdAtMost: kworkerHold)
        let requeued = Box<[EnqueueResult]>([])
        let job = Job("async-cancel") { job in
            if job.runCount == 0 { gate.pass() }
            requeued.update { $0.append(queue.enqueue(job)) }
        }
        #expect(queue.enqueue(job) == .queued)
        #expect(await gate.reached())
        #expect(queue.enqueue(job) == .queued, "pending again behind its own run")
        let returned = Flag()
        let canceller = Task { () async throws -> (Bool, Int) in
            let wasPending: Bool
            if disable { wasPending = try await job.disableWorkSync() } else { wasPending = try await job.cancelWorkSync() }
            returned.set()
            return (wasPending, job.runCount)
        }
        #expect(await eventually { job.work.isDisabled }, "disabled at once, on the task")
        #expect(!job.work.isPending, "cancelled at once")
        try await Task.sleep(for: .milliseconds(50))
        #expect(!returned.isSet, "returned while the run was held")
        gate.open()
        let (wasPending, runsAtReturn) = try await canceller.value
        #expect(wasPending, "it was pending")
        #expect(runsAtReturn == 1, "the held run had finished when the await returned")
        #expect(!job.work.isPending && !job.work.isRunning)
        #expect(requeued.get() == [.disabled], "the run's re-enqueue during the wait was refused")
        try await Task.sleep(for: .milliseconds(30))
        #expect(job.runCount == 1, "no run after the await returned")
        #expect(job.work.isDisabled == disable)
        if disable {
            #expect(queue.enqueue(job) == .disabled, "stays off until enableWork")
            #expect(job.enableWork())
        }
        #expect(try await job.cancelWorkSync() == false, "idle: returns at once")
        try await queue.destroyQueue()
    }

    /// `await flushWork()` returns only once the pending and the running instance have run;
    /// idle, it returns false at once; its timeout is the blocking call's, error included.
    @Test func anAsyncFlushWaitsForTheLastQueuedInstance() async throws {
        let queue = try makeQueue("wq-async-flush", flags: .highPri)
        let gate = Gate("run", holdAtMost: kworkerHold)
        let job = Job("async-flush") { job in if job.runCount == 0 { gate.pass() } }
        #expect(try await job.flushWork() == false, "idle: nothing to wait for")
        queue.enqueue(job)
        #expect(await gate.reached())
        #expect(queue.enqueue(job) == .queued, "pending behind its own run")
        let returned = Flag()
        let flusher = Task { () async throws -> (Bool, Int) in
            let waited = try await job.flushWork()
            returned.set()
            return (waited, job.runCount)
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!returned.isSet, "returned while the run was held")
        gate.open()
        let (waited, runs) = try await flusher.value
        #expect(waited)
        #expect(runs == 2, "both instances had run when the await returned")

        let slowGate = Gate("slow", holdAtMost: kworkerHold)
        let slow = Job("async-slow") { _ in slowGate.pass() }
        queue.enqueue(slow)
        #expect(await slowGate.reached())
        let asyncError = await caughtAsync { _ = try await slow.flushWork(timeout: .milliseconds(10)) }
        let blockingError = Threads.onThread { caught(WorkqueueError.self) { try slow.flushWork(timeout: .milliseconds(10)) } }
        #expect(asyncError == .timedOut(operation: "flushWork() of Job.run", after: .milliseconds(10)))
        #expect(asyncError == blockingError, "the blocking call's error")
        #expect(slow.runCount == 0 && slow.work.isRunning, "a timed-out flush changed nothing")
        slowGate.open()
        _ = try await slow.flushWork(timeout: .seconds(10))
        #expect(slow.runCount == 1)
        try await queue.destroyQueue()
    }

    /// `await flushDelayedWork()` fires an armed timer at once and waits for the run.
    @Test func anAsyncFlushDelayedWorkFiresTheTimerAtOnce() async throws {
        let queue = try makeQueue("wq-async-flush-delayed", flags: .highPri)
        let job = DelayedJob("async-flush-delayed")
        #expect(queue.queueDelayed(job, delay: .seconds(30)) == .queued)
        let start = monotonicNanoseconds()
        #expect(try await job.flushDelayedWork() == true, "it waited")
        #expect(monotonicNanoseconds() - start < 20_000_000_000, "fired at once, not after its 30 s delay (a loaded pool may resume the task late)")
        #expect(job.runCount == 1, "the run had finished when the await returned")
        #expect(!job.work.isPending && !job.delayedWork.isTimerArmed)
        #expect(queue.statistics.armedTimers == 0)
        #expect(try await job.flushDelayedWork() == false, "idle")
        try await queue.destroyQueue()
    }

    /// An item that re-arms itself from its run: once `await cancelDelayedWorkSync()`
    /// (`disableDelayedWorkSync()`) returns, its timer is disarmed, it is neither pending
    /// nor running, and it never runs again. The call comes while a run is held, which
    /// re-arms the timer during the wait.
    @Test(arguments: [false, true])
    func anAsyncCancelDelayedWorkSyncStopsAnItemThatReArmsItself(disable: Bool) async throws {
        let queue = try makeQueue("wq-async-rearm-\(disable)", flags: .highPri)
        let rearms = Box<[EnqueueResult]>([])
        let gate = Gate("sixth run", holdAtMost: kworkerHold)
        let job = DelayedJob("async-rearm") { job in
            if job.runCount == 5 { gate.pass() }
            rearms.update { $0.append(queue.queueDelayed(job, delay: .microseconds(300))) }
        }
        queue.queueDelayed(job, delay: .microseconds(300))
        #expect(await gate.reached(), "the sixth run is in progress")
        let returned = Flag()
        let canceller = Task { () async throws -> Int in
            if disable { try await job.disableDelayedWorkSync() } else { try await job.cancelDelayedWorkSync() }
            returned.set()
            return job.runCount
        }
        #expect(await eventually { job.delayedWork.isDisabled }, "disabled on the task, waiting for the run")
        try await Task.sleep(for: .milliseconds(30))
        #expect(!returned.isSet, "returned while the run was held")
        gate.open()
        #expect(try await canceller.value == 6, "the held run had finished when the await returned")
        #expect(!job.work.isPending && !job.work.isRunning && !job.delayedWork.isTimerArmed)
        try await Task.sleep(for: .milliseconds(20))  // 60 delays: a re-arm that got through would have run
        #expect(job.runCount == 6, "no run after the await returned")
        #expect(rearms.get().last == .disabled, "the re-arm during the wait was refused")
        #expect(job.delayedWork.isDisabled == disable)
        if disable {
            #expect(queue.queueDelayed(job, delay: .zero) == .disabled)
            #expect(job.enableDelayedWork())
        }
        try await queue.destroyQueue()
    }

    // MARK: - Queues

    /// `await flushQueue()` returns once every item queued before the call has run; an item
    /// queued after the call (the flush colour advanced on the task) is not waited for.
    @Test func anAsyncFlushQueueWaitsForTheItemsQueuedBeforeIt() async throws {
        let queue = try makeQueue("wq-async-flushq", flags: .highPri, maxActive: 8)
        let first = Gate("first", holdAtMost: kworkerHold), late = Gate("late", holdAtMost: kworkerHold)
        let held = Job("held") { _ in first.pass() }
        let others = (0..<4).map { Job("other-\($0)") { _ in usleep(1_000) } }
        let after = Job("after") { _ in late.pass() }
        queue.enqueue(held)
        #expect(await first.reached())
        for job in others { queue.enqueue(job) }
        let outcome = try await onOwnThread { pool -> (held: Int, others: Int, after: Int, returnedEarly: Bool) in
            let started = Flag(), returned = Flag()
            let flusher = Task(executorPreference: pool) { () async throws -> (Int, Int, Int) in
                started.set()
                try await queue.flushQueue()
                returned.set()
                return (held.runCount, others.map(\.runCount).reduce(0, +), after.runCount)
            }
            // One thread: the flusher ran up to its suspension before this resumes.
            while !started.isSet { try? await Task.sleep(for: .milliseconds(1)) }
            queue.enqueue(after)
            _ = await late.reached()
            try? await Task.sleep(for: .milliseconds(30))
            let returnedEarly = returned.isSet
            first.open()
            let (h, o, a) = try await flusher.value
            return (h, o, a, returnedEarly)
        }
        #expect(!outcome.returnedEarly, "returned while an item queued before it was held")
        #expect(outcome.held == 1 && outcome.others == 4, "the items queued before the call had run")
        #expect(outcome.after == 0, "the item queued after the call was not waited for")
        late.open()
        try await queue.flushQueue(timeout: .seconds(10))
        #expect(after.runCount == 1)
        try await queue.destroyQueue()
    }

    /// While an async drain waits, only the queue's own items may queue on it; any other
    /// enqueue is reported once and dropped; the await returns once the queue is empty, and
    /// then the queue takes items again. On a destroyed queue: the blocking call's error.
    @Test func anAsyncDrainKeepsTheDrainRules() async throws {
        let log = KernelLog(name: "async-drain")
        let queue = try makeQueue("wq-async-drain", flags: .highPri)
        let gate = Gate("chain", holdAtMost: kworkerHold)
        let chainResults = Box<[EnqueueResult]>([])
        let chain = Job("chain", log: log) { job in
            if job.runCount == 0 { gate.pass() }
            if job.runCount < 20 { chainResults.update { $0.append(queue.enqueue(job)) } }
        }
        let foreign = Job("foreign", log: log)
        queue.enqueue(chain)
        #expect(await gate.reached())
        let returned = Flag()
        let drainer = Task { () async throws -> Int in
            try await queue.drainQueue()
            returned.set()
            return chain.runCount
        }
        #expect(await eventually { queue.statistics.isDraining }, "draining, set on the task")
        let refused = KernelLog.withCurrent(log) { [queue.enqueue(foreign), queue.enqueue(foreign)] }
        #expect(refused == [.refused, .refused])
        #expect(!foreign.work.isPending)
        try await Task.sleep(for: .milliseconds(30))
        #expect(!returned.isSet, "returned while the chain was held")
        gate.open()
        #expect(try await drainer.value == 21, "chained enqueues were taken until the end, and ran before the await returned")
        #expect(chainResults.get().allSatisfy { $0 == .queued })
        let statistics = queue.statistics
        #expect(statistics.pending == 0 && statistics.running == 0 && !statistics.isDraining, "drained, and no longer draining")
        #expect(log.reports.map(\.headline) == ["workqueue: cannot queue Job.run on wq wq-async-drain"], "reported once")
        #expect(queue.enqueue(foreign) == .queued, "after the drain the queue takes items again")
        _ = try await foreign.flushWork(timeout: .seconds(10))
        #expect(foreign.runCount == 1)
        try await queue.destroyQueue()
        let asyncError = await caughtAsync { try await queue.drainQueue() }
        let blockingError = Threads.onThread { caught(WorkqueueError.self) { try queue.drainQueue() } }
        #expect(asyncError == .destroyed(queue: "wq-async-drain"))
        #expect(asyncError == blockingError)
    }

    /// `await destroyQueue()` refuses what the blocking call refuses, with the same errors
    /// and reports and nothing changed (an armed timer, a queue already destroyed, a system
    /// queue); otherwise it drains the queue first and then takes no item ever after.
    @Test func anAsyncDestroyRefusesAsTheBlockingCallAndDrainsFirst() async throws {
        let log = KernelLog(name: "async-destroy")
        let queue = try makeQueue("wq-async-destroy", flags: .highPri, log: log)
        let delayed = DelayedJob("armed")
        #expect(queue.queueDelayed(delayed, delay: .seconds(30)) == .queued)
        let busy = await caughtAsync { try await queue.destroyQueue() }
        #expect(busy == .busy(queue: "wq-async-destroy", reason: "1 delayed work timer(s) armed to queue on it"))
        let headline = "WARNING: destroy_workqueue(wq-async-destroy): 1 delayed work timer(s) still armed to queue on it; refused"
        #expect(log.reports.map(\.headline) == [headline])
        let blockingBusy = Threads.onThread { caught(WorkqueueError.self) { try queue.destroyQueue() } }
        #expect(busy == blockingBusy)
        #expect(log.reports.map(\.headline) == [headline, headline], "the blocking call's report")
        #expect(delayed.cancelDelayedWork(), "still armed: the refused destroy changed nothing")

        let gate = Gate("held", holdAtMost: kworkerHold)
        let held = Job("held") { _ in gate.pass() }
        let slow = (0..<6).map { i in Job("slow\(i)") { _ in usleep(2_000) } }
        queue.enqueue(held)
        #expect(await gate.reached())
        for job in slow { #expect(queue.enqueue(job) == .queued, "the queue still takes items") }
        let returned = Flag()
        let destroyer = Task { () async throws -> Int in
            try await queue.destroyQueue()
            returned.set()
            return held.runCount + slow.map(\.runCount).reduce(0, +)
        }
        #expect(await eventually { queue.statistics.isDraining }, "destroying, set on the task")
        try await Task.sleep(for: .milliseconds(30))
        #expect(!returned.isSet, "returned while an item was held")
        gate.open()
        #expect(try await destroyer.value == 7, "drained before the await returned")
        #expect(!Workqueue.all.contains { $0.name == "wq-async-destroy" }, "no longer registered")
        #expect(KernelLog.withCurrent(log) { queue.enqueue(Job("late")) } == .refused)

        let again = await caughtAsync { try await queue.destroyQueue() }
        let blockingAgain = Threads.onThread { caught(WorkqueueError.self) { try queue.destroyQueue() } }
        #expect(again == .destroyed(queue: "wq-async-destroy"))
        #expect(again == blockingAgain)

        let systemLog = KernelLog(name: "async-system")
        let system = try await onOwnThread { _ in
            await withCurrentLog(systemLog) { await caughtAsync { try await Workqueue.system.destroyQueue() } }
        }
        let blockingSystemLog = KernelLog(name: "blocking-system")
        let blockingSystem = Threads.onThread {
            KernelLog.withCurrent(blockingSystemLog) { caught(WorkqueueError.self) { try Workqueue.system.destroyQueue() } }
        }
        #expect(system == .systemQueue(name: "events"))
        #expect(system == blockingSystem)
        #expect(systemLog.reports.map(\.headline) == ["WARNING: destroy_workqueue(events): a system workqueue cannot be destroyed; refused"])
        #expect(systemLog.reports.map(\.headline) == blockingSystemLog.reports.map(\.headline))
        let late = Job("system-late")
        #expect(Workqueue.system.enqueue(late) == .queued, "the system queue still works")
        _ = try await late.flushWork(timeout: .seconds(10))
        #expect(late.runCount == 1)
    }

    // MARK: - Errors, cancellation, lockdep

    /// Every async wait is a sleeping call: refused in atomic context on the calling task,
    /// reported once each, nothing changed (an armed timer stays armed).
    @Test func asyncWaitsAreRefusedInAtomicContext() async throws {
        let log = KernelLog(name: "async-atomic")
        let queue = try makeQueue("wq-async-atomic", flags: .highPri, log: log)
        let job = Job("atomic", log: log)
        let delayed = DelayedJob("atomic-delayed", log: log)
        #expect(queue.queueDelayed(delayed, delay: .seconds(30)) == .queued)
        let errors = try await onOwnThread { _ -> [WorkqueueError?] in
            AtomicContext.preemptDisable()
            var errors: [WorkqueueError?] = []
            for wait in AsyncWorkWait.allCases {
                errors.append(await caughtAsync { try await wait.perform(plain: job, delayed: delayed, queue: queue) })
            }
            AtomicContext.preemptEnable()
            return errors
        }
        #expect(errors.count == AsyncWorkWait.allCases.count)
        for (wait, error) in zip(AsyncWorkWait.allCases, errors) {
            if case .atomicContext? = error {} else { Issue.record("\(wait): expected atomicContext, got \(String(describing: error))") }
        }
        #expect(log.reports(.sleepInAtomic).count == AsyncWorkWait.allCases.count)
        #expect(!job.work.isDisabled && !delayed.delayedWork.isDisabled, "nothing disabled")
        #expect(delayed.delayedWork.isTimerArmed, "the timer was not fired")
        #expect(!queue.statistics.isDraining)
        #expect(queue.enqueue(job) == .queued, "the queue is alive")
        _ = try await job.flushWork(timeout: .seconds(10))
        #expect(job.runCount == 1)
        #expect(try await delayed.cancelDelayedWorkSync())
        try await queue.destroyQueue()
    }

    /// A cancelled task's await still waits for the held run and returns normally.
    @Test(arguments: AsyncWorkWait.allCases)
    func aCancelledTasksAwaitStillWaitsAndReturnsNormally(_ wait: AsyncWorkWait) async throws {
        let queue = try makeQueue("wq-async-cancelled", flags: .highPri)
        let gate = Gate("run", holdAtMost: kworkerHold)
        let plain = Job("cancelled-plain") { _ in gate.pass() }
        let delayed = DelayedJob("cancelled-delayed") { _ in gate.pass() }
        if wait.isDelayed { queue.queueDelayed(delayed, delay: .zero) } else { queue.enqueue(plain) }
        #expect(await gate.reached())
        let opener = try gate.open(after: .milliseconds(50))
        let task = Task { () async throws -> (Bool, Int) in
            try? await Task.sleep(for: .seconds(30))  // returns once cancelled
            let cancelled = Task.isCancelled
            try await wait.perform(plain: plain, delayed: delayed, queue: queue)
            return (cancelled, plain.runCount + delayed.runCount)
        }
        task.cancel()
        let (cancelled, runs) = try await task.value
        #expect(cancelled, "the call was made from a cancelled task")
        #expect(runs == 1, "the held run had finished when the cancelled await returned")
        #expect(gate.passed == 1)
        try await opener.join()
        if wait != .destroyQueue { try await queue.destroyQueue() }
    }

    /// The async waits note the wait for the lock validator on the calling task, as the
    /// blocking ones do: made with a lock held that the item takes, each is reported as a
    /// circular dependency. (A task holds the lock's map across the call on a thread of its
    /// own.)
    @Test(arguments: AsyncWorkWait.allCases)
    func anAsyncWaitUnderALockTheItemTakesIsACircularDependency(_ wait: AsyncWorkWait) throws {
        try LockdepGate.run {
            let log = KernelLog(name: "wq-async-lockdep")
            let lock = SleepingMutex(0, key: LockClassKey("wq-async-test->lock"))
            let queue = try Workqueue(name: "wq-ald", flags: .highPri, log: log, lockClass: LockClassKey("(wq_completion)wq-ald"))
            let takeLock: @Sendable () -> Void = { _ = try? lock.withLock { $0 += 1 } }
            let plain = Job("ald-plain", log: log) { _ in takeLock() }
            let delayed = DelayedJob("ald-delayed", log: log) { _ in takeLock() }
            // The item runs once: its map, then the lock.
            try Threads.onThread { () throws(WorkqueueError) in
                if wait.isDelayed {
                    queue.queueDelayed(delayed, delay: .seconds(30))
                    _ = try delayed.flushDelayedWork(timeout: .seconds(10))
                } else {
                    queue.enqueue(plain)
                    _ = try plain.flushWork(timeout: .seconds(10))
                }
            }
            #expect(log.reports.isEmpty)
            // The wait, with the lock held.
            let pool = try FixedPool(width: 1, name: "wq-ald")
            let done = DispatchSemaphore(value: 0)
            Task(executorPreference: pool) {
                Lockdep.acquire(lock.lockdepMap, function: "mutex_lock", file: #fileID, line: #line)
                try? await wait.perform(plain: plain, delayed: delayed, queue: queue)
                Lockdep.release(lock.lockdepMap)
                done.signal()
            }
            #expect(done.wait(timeout: .now() + 30) == .success)
            try pool.stop()
            #expect(log.reports.map(\.headline) == ["WARNING: possible circular locking dependency detected"], "\(log.reports.map(\.lines))")
            let lines = log.reports.first?.lines ?? []
            let map = wait.isQueueWait ? "(wq_completion)wq-ald" : wait.isDelayed ? DelayedJob().work.lockdepMap.name : Job().work.lockdepMap.name
            #expect(lines.contains { $0.contains("(\(map)){") }, "names the map waited on: \(lines)")
            #expect(lines.contains { $0.contains("(wq-async-test->lock){") })
            if wait != .destroyQueue { try Threads.onThread { try queue.destroyQueue() } }
        }
    }

    // MARK: - No parked pool thread

    /// None of the async waits parks a thread of the concurrency pool: more tasks than the
    /// pool has threads await each of them (every kind as many times as the pool has
    /// threads), on held runs; only a task queued behind all of them opens the gate. If any
    /// kind of wait parked its pool thread, its copies would park the whole pool, the
    /// releasing task would never run, and a watchdog thread would open the gate at its
    /// deadline instead: the test fails. (The pattern of `NoParkedPoolThreadTests`, on a
    /// pool of the test's own: 2 threads, never more.)
    @Test func noAsyncWaitParksAThreadOfTheConcurrencyPool() async throws {
        let copies = 2
        let pool = try FixedPool(width: copies, name: "wq-no-park")
        let gate = Gate("held runs")
        let finished = Flag(), timedOut = Flag()
        let deadline = Deadline.after(.seconds(Scale.isTSan ? 60 : 20))
        let watchdog = try KThread(name: "watchdog") {
            while !finished.isSet && !deadline.hasPassed { usleep(1_000) }
            if !finished.isSet {
                timedOut.set()
                gate.open()
            }
        }

        // Held runs: an item and a delayed item on a high-priority per-CPU pool (2
        // workers); an item on each of three queues of the unbound high-priority pool.
        let items = try Workqueue(name: "wq-np-items", flags: .highPri)
        let queues = try (0..<3).map { i in try Workqueue(name: "wq-np-\(i)", flags: [.unbound, .highPri]) }
        let plain = Job("np-plain") { _ in gate.pass() }
        let delayed = DelayedJob("np-delayed") { _ in gate.pass() }
        let queued = (0..<3).map { i in Job("np-queued-\(i)") { _ in gate.pass() } }
        #expect(items.queueOn(cpu: 0, plain) == .queued)
        #expect(items.queueDelayedOn(cpu: 0, delayed, delay: .zero) == .queued)
        for (queue, job) in zip(queues, queued) { #expect(queue.enqueue(job) == .queued) }
        guard await gate.reached(5) else {
            gate.open()
            Issue.record("not held: \(gate.arrived) of 5")
            return
        }

        // Every kind `copies` times: the item waits on the held items, the flushes and
        // drains on queue 0, one destroy on each of queues 1 and 2.
        var operations: [@Sendable () async -> String?] = []
        for copy in 0..<copies {
            for wait in AsyncWorkWait.allCases {
                let queue = wait == .destroyQueue ? queues[1 + copy] : queues[0]
                operations.append {
                    do throws(WorkqueueError) {
                        try await wait.perform(plain: plain, delayed: delayed, queue: queue)
                        return nil
                    } catch {
                        return "\(wait): \(error)"
                    }
                }
            }
        }
        let operationCount = operations.count
        let started = AtomicCounter(), completed = AtomicCounter(), offPool = AtomicCounter()
        let completedBeforeRelease = Box<Int>(-1)
        let failures = await withTaskExecutorPreference(pool) {
            await withTaskGroup(of: String?.self) { group in
                for operation in operations {
                    group.addTask {
                        if !KThread.currentName.hasPrefix("wq-no-park/") { offPool.increment() }
                        started.increment()
                        let failure = await operation()
                        completed.increment()
                        return failure
                    }
                }
                // Queued behind every awaiting task: runs only if they left the pool free.
                group.addTask {
                    while started.value < operationCount { try? await Task.sleep(for: .milliseconds(1)) }
                    try? await Task.sleep(for: .milliseconds(100))  // let every wait begin
                    completedBeforeRelease.set(completed.value)
                    gate.open()
                    return nil
                }
                var failures: [String] = []
                for await failure in group { if let failure { failures.append(failure) } }
                return failures
            }
        }
        finished.set()
        try await watchdog.join()
        try await BlockingPool.shared.run { try pool.stop() }

        #expect(!timedOut.isSet, "a wait parked a thread of the concurrency pool: the releasing task ran only after the watchdog opened the gate")
        #expect(completedBeforeRelease.get() == 0, "every wait held until the releasing task ran")
        #expect(offPool.value == 0, "every awaiting task ran on the test's pool")
        #expect(failures.isEmpty, "\(failures)")
        #expect(plain.runCount == 1 && delayed.runCount == 1 && queued.allSatisfy { $0.runCount == 1 })
        #expect(!plain.work.isRunning && !delayed.work.isRunning)
        #expect(!Workqueue.all.contains { $0.name == "wq-np-1" || $0.name == "wq-np-2" }, "both destroyed")
        #expect(!queues[0].statistics.isDraining)
        // Tear down: the copies of disableWorkSync left each item disabled twice.
        for _ in 0..<copies {
            plain.enableWork()
            delayed.enableDelayedWork()
        }
        #expect(!plain.work.isDisabled && !delayed.delayedWork.isDisabled)
        try await items.destroyQueue()
        try await queues[0].destroyQueue()
    }
}
