/// The library's reaper: does, later and in process context, the sleeping part of a
/// teardown that was reached where sleeping is not allowed.
///
/// A `deinit` cannot throw. When the last reference to a `Devres` or an IRQ `Registration`
/// is dropped inside a read-side section or a hard-IRQ handler, the teardown reports the
/// sleeping call and hands its waiting part here, as the kernel queues work. Work runs one
/// item at a time, in the order it was scheduled: on an ordered workqueue, `irqemu_reaper`
/// (unbound: its items run on the unbound pool's kworkers).
public final class Reaper: Sendable {
    /// The process-wide reaper; its queue is created on first use.
    public static let shared = Reaper()

    /// The queue's name.
    public static let queueName = "irqemu_reaper"

    private struct State {
        var queue: Workqueue?
        /// Work scheduled while the queue could not be created (the process was out of
        /// threads), in order; queued as soon as it can be.
        var backlog: [ClosureWork] = []
    }

    private let state = LockedValue(State())

    private init() {}

    /// Queues `work` (described by `what`) to run on the reaper's queue. Never sleeps:
    /// callable from any context. Allocates the item.
    ///
    /// If the queue cannot be created (its pool's workers cannot start: the process is out
    /// of threads), the work is kept, in order, and the next `schedule` or `flush` tries
    /// again.
    public func schedule(_ what: String, _ work: @escaping @Sendable () -> Void) {
        let item = ClosureWork(name: what, work)
        let queue = state.withLock { state -> Workqueue? in
            state.backlog.append(item)
            return state.queue
        }
        if queue == nil { _ = startIfNeeded() } else { submitBacklog() }
    }

    /// Creates the queue if it is not yet, and queues the backlog. Returns the queue.
    private func startIfNeeded() -> Workqueue? {
        if let queue = state.withLock({ $0.queue }) {
            submitBacklog()
            return queue
        }
        guard let made = try? Workqueue.ordered(name: Self.queueName, lockClass: LockClassKey("(wq_completion)\(Self.queueName)")) else {
            return nil
        }
        let queue = state.withLock { state -> Workqueue in
            if let existing = state.queue { return existing }  // another thread made one first
            state.queue = made
            return made
        }
        if queue !== made { try? made.destroyQueue() }
        submitBacklog()
        return queue
    }

    /// Queues the backlog, in order, under the state lock (so items queue in the order they
    /// were scheduled).
    private func submitBacklog() {
        state.withLock { state in
            guard let queue = state.queue else { return }
            for item in state.backlog { queue.enqueue(item) }
            state.backlog.removeAll()
        }
    }

    /// Work queued and not yet finished.
    public var pending: Int {
        let (queue, backlog) = state.withLock { ($0.queue, $0.backlog.count) }
        guard let statistics = queue?.statistics else { return backlog }
        return backlog + statistics.pending + statistics.running
    }

    /// Work finished since the process started.
    public var completed: Int { Int(state.withLock { $0.queue }?.statistics.executed ?? 0) }

    /// Whether the calling thread is running work of the reaper.
    public var isCurrent: Bool {
        guard let current = Workqueue.current else { return false }
        return state.withLock { $0.queue } === current
    }

    /// Waits until everything queued before the call has run (`flush_workqueue`), up to
    /// `timeout` (see `Deadline` for the policy).
    ///
    /// - Throws: `atomicContext` in atomic context; `wouldDeadlock` from work running on the
    ///   reaper (that work is part of what it would wait for; reported); `timedOut`.
    @available(*, noasync, message: "blocks the thread")
    public func flush(timeout: Duration? = .seconds(10), file: StaticString = #fileID, line: UInt = #line) throws(WaitError) {
        do {
            try AtomicContext.mightSleep("Reaper.flush(timeout:)", file: file, line: line)
        } catch { throw .atomicContext(error) }
        let deadline = Deadline.after(timeout)
        // Out of threads: the work stays in the backlog until the queue can be created.
        var started = startIfNeeded()
        while started == nil {
            if deadline.hasPassed { throw .timedOut(operation: "Reaper.flush", after: timeout ?? .zero) }
            try? Deadline.after(.milliseconds(1)).sleep()
            started = startIfNeeded()
        }
        guard let queue = started else { return }
        do throws(WorkqueueError) {
            try queue.flushQueue(timeout: deadline.remaining, file: file, line: line)
        } catch {
            switch error {
            case .atomicContext(let violation): throw .atomicContext(violation)
            case .wouldDeadlock(let reason): throw .wouldDeadlock(reason: reason)
            default: throw .timedOut(operation: "Reaper.flush", after: timeout ?? .zero)
            }
        }
    }
}
