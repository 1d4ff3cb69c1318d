import Glibc
import SystemPackage

/// The workqueue subsystem's shared state: one lock, the worker pools, the live queues, the
/// timer and the references given back on a worker.
///
/// One raw lock guards every pool, queue and item (the kernel has one per pool, plus the
/// item's PENDING bit for lock-free claiming). It is held for a few dozen nanoseconds per
/// operation and never across a work function, a report or a reference release, so taking
/// it is safe from any context, hard-IRQ handlers and read-side sections included. An
/// emulation's simplification: an item's state never has to be found on another pool's
/// lock, so no operation retries.
@safe
final class WorkqueueCore: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): pools, configuration and `started` are only touched with
    // `setupLock` held (pools are immutable once started, and never freed); everything else
    // with `lock` held.
    static let shared = WorkqueueCore()

    /// Guards every item, list, pool and queue state.
    let lock = Lock()
    /// Serializes pool creation and configuration (thread creation happens outside `lock`).
    let setupLock = Lock()

    // MARK: Configuration (setupLock)

    private(set) var cpuCount = max(1, KThread.hostCPUCount)
    private(set) var hostCPUs: [Int]?
    private(set) var perCPUWorkers = 2
    private(set) var unboundWorkers = 4
    private var pools: [Int: WorkerPool] = [:]
    private var timerStarted = false

    // MARK: State (lock)

    /// Live queues, oldest first: a queue stays here (alive) until `destroyQueue()`.
    var queues: [Workqueue] = []
    /// Items with queue references to give back on a worker, linked through `releaseNext`
    /// (SAFETY: a listed item's owner holds the references it waits for, so it is alive).
    unowned(unsafe) private var _releaseHead: Work?
    var releaseHead: Work? { get { unsafe _releaseHead } set { unsafe _releaseHead = newValue } }
    /// The worker-side half of those releases.
    let releaser = DeferredRelease()
    /// The delayed-work timer.
    let timer = WorkTimer()

    /// The calling thread's worker, if it is one (for `current_work` and the self-wait
    /// checks).
    static let currentWorker = ThreadLocalPointer()

    private init() {}

    // MARK: - Pools

    /// Sets the pools up, before any starts.
    func configure(cpus: Int, hostCPUs: [Int]?, perCPUWorkers: Int, unboundWorkers: Int) throws(WorkqueueError) {
        guard (1...64).contains(cpus) else { throw .invalidArgument("workqueue CPUs \(cpus) not in 1...64") }
        guard (1...64).contains(perCPUWorkers), (1...64).contains(unboundWorkers) else {
            throw .invalidArgument("workers per pool not in 1...64")
        }
        if let hostCPUs, hostCPUs.isEmpty || hostCPUs.contains(where: { $0 < 0 }) {
            throw .invalidArgument("host CPUs \(hostCPUs)")
        }
        try setupLock.withLock { () throws(WorkqueueError) in
            guard pools.isEmpty else { throw .alreadyStarted }
            cpuCount = cpus
            self.hostCPUs = hostCPUs
            self.perCPUWorkers = perCPUWorkers
            self.unboundWorkers = unboundWorkers
        }
    }

    /// The emulated CPUs of the per-CPU pools.
    var cpus: Int { setupLock.withLock { cpuCount } }

    /// The pools a new queue uses, started if they were not: one per CPU, or the unbound one,
    /// of its priority. Also starts the timer thread with the first pool.
    ///
    /// - Throws: `outOfResources` if a thread cannot start; pools that started stay.
    func pools(unbound: Bool, highPri: Bool) throws(WorkqueueError) -> [WorkerPool] {
        try setupLock.withLock { () throws(WorkqueueError) -> [WorkerPool] in
            if !timerStarted {
                do throws(Errno) {
                    try timer.start()
                } catch {
                    throw .outOfResources(what: "workqueue timer thread", errno: error)
                }
                timerStarted = true
            }
            if unbound {
                return [try pool(id: 2 * cpuCount + (highPri ? 1 : 0), cpu: nil, highPri: highPri)]
            }
            var result: [WorkerPool] = []
            for cpu in 0..<cpuCount {
                result.append(try pool(id: 2 * cpu + (highPri ? 1 : 0), cpu: cpu, highPri: highPri))
            }
            return result
        }
    }

    /// The pool `id`, started now if it was not. setupLock held.
    private func pool(id: Int, cpu: Int?, highPri: Bool) throws(WorkqueueError) -> WorkerPool {
        if let existing = pools[id] { return existing }
        let pool = WorkerPool(id: id, cpu: cpu, highPri: highPri)
        let hostCPU = cpu.flatMap { cpu in hostCPUs.map { $0[cpu % $0.count] } }
        do throws(Errno) {
            try pool.start(workers: cpu == nil ? unboundWorkers : perCPUWorkers, hostCPU: hostCPU)
        } catch {
            throw .outOfResources(what: "workqueue worker \(pool.workerName(pool.workers.count))", errno: error)
        }
        pools[id] = pool
        return pool
    }

    /// Whether any pool has started.
    var hasStarted: Bool { setupLock.withLock { !pools.isEmpty } }

    // MARK: - Queue and item state (lock held)

    /// Puts `work` (pending, on no list) on `pwq`: active on the pool's worklist if the queue
    /// has room (and nothing waits before it), else on the queue's inactive list. Returns an
    /// idle worker to wake, if one should be. The queueing path: no retain, no release.
    @inline(__always)
    func insertLocked(_ work: Work, _ pwq: PoolQueue) -> WakeUp {
        unsafe work.pwqRef = Unmanaged.passUnretained(pwq)
        unsafe pwq.queueRef._withUnsafeGuaranteedRef { queue in
            work.color = queue.currentColor
            queue.inFlight[queue.currentColor] += 1
            queue.queued += 1
        }
        if pwq.nrActive < pwq.maxActive && pwq.inactive.isEmpty {
            pwq.nrActive += 1
            work.active = true
            pwq.pool.worklist.append(work)
            return pwq.pool.popIdleLocked()
        }
        work.active = false
        pwq.inactive.append(work)
        return .none
    }

    /// Moves inactive items of `pwq` to its pool while it has room. Returns an idle worker
    /// to wake, if one should be.
    func activateLocked(_ pwq: PoolQueue) -> WakeUp {
        var wake = WakeUp.none
        while pwq.nrActive < pwq.maxActive, let next = pwq.inactive.popFirst() {
            pwq.nrActive += 1
            next.active = true
            pwq.pool.worklist.append(next)
            if !wake.isNeeded { wake = pwq.pool.popIdleLocked() }
        }
        return wake
    }

    /// An instance of an item on `pwq` with flush colour `color` is done (it ran, or was
    /// taken back while active). Returns a worker to wake.
    func retireActiveLocked(_ pwq: PoolQueue, color: UInt64) -> WakeUp {
        pwq.nrActive -= 1
        pwq.queue.inFlight[color] -= 1
        return activateLocked(pwq)
    }

    /// A pending item taken back from its queue or timer: its queue reference, now the
    /// caller's to give back (`giveBack`).
    struct Stolen {
        let work: Work
        let owner: ItemReference
        let queue: Workqueue
        let pwq: PoolQueue
    }

    /// An item a queue refused (it drains): its reference to give back, and whether to
    /// report it (once per queue).
    struct Refused {
        let stolen: Stolen
        let report: Bool
    }

    /// `try_to_grab_pending`: if `work` is pending, takes it off its list or disarms its
    /// timer and clears PENDING. Returns the reference it held (nil if it was not pending)
    /// and a worker to wake (an inactive item activated in its place).
    func grabPendingLocked(_ work: Work) -> (Stolen?, WakeUp) {
        guard work.pending else { return (nil, .none) }
        let queue: Workqueue, pwq: PoolQueue
        var wake = WakeUp.none
        if work.isDelayed, work.asDelayed.armed {
            let dw = work.asDelayed
            timer.disarmLocked(dw)
            queue = dw.targetQueue!
            pwq = queue.pwq(cpu: dw.targetCPU)
        } else {
            pwq = work.pwq!
            queue = pwq.queue
            work.list!.remove(work)
            queue.queued -= 1
            if work.active {
                work.active = false
                wake = retireActiveLocked(pwq, color: work.color)
            } else {
                queue.inFlight[work.color] -= 1
            }
            work.pwq = nil
        }
        work.pending = false
        return (Stolen(work: work, owner: work.owner!, queue: queue, pwq: pwq), wake)
    }

    /// Gives back a reference taken with `grabPendingLocked` (lock not held): at once in
    /// process context, else on a worker, so the owner is never released in a hard-IRQ
    /// handler or a read-side section. Wakes those waiting for the item or its queue.
    func giveBack(_ stolen: Stolen) {
        WaitVar.wakeUp(stolen.work)
        WaitVar.wakeUp(stolen.queue)
        if AtomicContext.isAtomic {
            lock.lock()
            let wake = deferReleaseLocked(stolen.work, pwq: stolen.pwq)
            lock.unlock()
            wake.signal()
        } else {
            // The queue's reference, handed to us by `grabPendingLocked`.
            stolen.owner.release()
        }
    }

    /// Queues one release of `work`'s owner for the releaser, which is queued on `pwq` if it
    /// is not pending already. Returns a worker to wake.
    func deferReleaseLocked(_ work: Work, pwq: PoolQueue) -> WakeUp {
        work.deferredReleases += 1
        if work.deferredReleases == 1 {
            work.releaseNext = releaseHead
            releaseHead = work
        }
        let releaser = self.releaser.work
        guard !releaser.pending else { return .none }
        // The releaser is immortal (a `let` of this object): its reference costs nothing to
        // keep and is never the last.
        if releaser.owner == nil {
            releaser.item = self.releaser
            releaser.owner = ItemReference(self.releaser)
        }
        // The releaser's queue reference, given back by its worker after its run.
        releaser.owner!.retain()
        releaser.pending = true
        releaser.queuedSeq &+= 1
        return insertLocked(releaser, pwq)
    }

    /// Takes every deferred release off the list. Lock held.
    func takeDeferredReleasesLocked() -> [(ItemReference, Int)] {
        var result: [(ItemReference, Int)] = []
        while let work = releaseHead {
            releaseHead = work.releaseNext
            work.releaseNext = nil
            result.append((work.owner!, work.deferredReleases))
            work.deferredReleases = 0
        }
        return result
    }
}
