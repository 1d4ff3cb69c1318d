/// The threads where irqemu's `async` calls do the part of their work that waits (named
/// `irqemu-async/N`), so that no thread of Swift's concurrency pool ever waits inside
/// irqemu. Not a `Workqueue`: its work waits for other work queued after it, which needs
/// the concurrency management the workqueue does not emulate (below).
///
/// An async overload flips on the calling task what it can flip without blocking, submits
/// the rest here and suspends; the worker that runs it waits (for running handlers, for
/// `withBound` holders, for a reader's lock, for a grace period shared with other
/// waiters), finishes the release in process context, and resumes the task.
///
/// Work is taken in order by idle workers. Concurrency is managed as the kernel manages
/// it, so a worker that blocks never holds the queue up for long: while work is queued and
/// no worker has taken any for a millisecond (every worker is waiting), the pool's manager
/// thread starts one more. Work that waits for later work (an unbind whose driver's
/// `remove` waits for a revoke queued after it) therefore always makes progress. Workers are
/// kept once started: the pool holds one per CPU (at least two), plus as many as were ever
/// blocked at once beyond those.
///
/// - Note: All methods are thread-safe and never sleep.
package final class BlockingPool: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): every `var` is only touched with `lock` held.

    /// The process-wide pool; its threads start on first use.
    package static let shared = BlockingPool(name: "irqemu-async", minimumWorkers: max(2, KThread.hostCPUCount))

    private let name: String
    private let minimumWorkers: Int
    private let stallInterval: Duration
    private let lock = ConditionLock()
    /// Queued work, oldest first from `head`; a taken slot is cleared at once, so nothing
    /// the work captured outlives its run.
    private var queue: [(@Sendable () -> Void)?] = []
    private var head = 0
    private var idle = 0
    private var workers: [KThread] = []
    /// Work taken since the pool started: the manager's measure of progress.
    private var taken: UInt64 = 0
    private var manager: KThread?

    /// A pool whose threads are named `name/N`, keeping at least `minimumWorkers` of them
    /// once they were needed, which starts one more when the queue has not moved for
    /// `stallInterval`.
    package init(name: String, minimumWorkers: Int, stallInterval: Duration = .milliseconds(1)) {
        self.name = name
        self.minimumWorkers = max(1, minimumWorkers)
        self.stallInterval = stallInterval
    }

    /// Queues `work` to run on a worker thread, in process context. Never sleeps.
    package func submit(_ work: @escaping @Sendable () -> Void) {
        submit(contentsOf: CollectionOfOne(work))
    }

    /// Queues each of `work`, in order, with one lock and one wake-up.
    package func submit<C: Collection>(contentsOf work: C) where C.Element == @Sendable () -> Void {
        guard !work.isEmpty else { return }
        lock.withLock {
            queue.reserveCapacity(queue.count + work.count)
            for item in work { queue.append(item) }
            if idle == 0 {
                if workers.count < minimumWorkers { startWorkerLocked() } else { startManagerLocked() }
            }
        }
        lock.wakeAll()
    }

    /// Runs `body` on a worker thread and returns its result (or rethrows its error) to the
    /// calling task, which is suspended meanwhile: no thread of the concurrency pool waits.
    ///
    /// The log in scope on the calling thread when this is called (`KernelLog.current`) is
    /// the worker's while `body` runs. Cancelling the calling task does not cancel `body`:
    /// the call returns once `body` has, with its result.
    package func run<R: Sendable, E: Error>(
        _ body: @escaping @Sendable () throws(E) -> R
    ) async throws(E) -> R {
        let log = KernelLog.current
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<R, E>, Never>) in
            submit {
                continuation.resume(returning: KernelLog.withCurrent(log) { Result(catching: body) })
            }
        }
        return try result.get()
    }

    /// Workers started so far.
    package var workerCount: Int { lock.withLock { workers.count } }

    /// Work queued and not yet taken.
    package var queued: Int { lock.withLock { queue.count - head } }

    // MARK: - Threads

    private func startWorkerLocked() {
        // A runtime thread: the thread-failure fault is not drawn for it.
        if let started = try? KThread(runtime: "\(name)/\(workers.count)", { [self] in workerLoop() }) {
            workers.append(started)
        } else {
            // Out of threads: the manager retries after each stall interval.
            startManagerLocked()
        }
    }

    private func startManagerLocked() {
        guard manager == nil else { return }
        manager = try? KThread(runtime: "\(name)-mgr") { [self] in managerLoop() }
    }

    private func workerLoop() {
        while true {
            let work = lock.withLock { () -> @Sendable () -> Void in
                idle += 1
                _ = lock.waitLocked { head < queue.count }
                idle -= 1
                return takeLocked()
            }
            work()
        }
    }

    private func takeLocked() -> @Sendable () -> Void {
        let work = queue[head]!
        queue[head] = nil
        head += 1
        taken &+= 1
        if head == queue.count {
            queue.removeAll(keepingCapacity: queue.count <= 4096)
            head = 0
        } else if head >= 4096 && head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
        return work
    }

    /// Sleeps until work is queued with no idle worker, then starts a worker each time
    /// `stallInterval` passes with work queued, no worker idle, and none taken.
    private func managerLoop() {
        lock.withLock {
            while true {
                _ = lock.waitLocked { head < queue.count && idle == 0 }
                let seen = taken
                _ = lock.waitLocked(until: .after(stallInterval)) { false }
                if head < queue.count && idle == 0 && taken == seen { startWorkerLocked() }
            }
        }
    }
}
