/// Queueing: `queue_work`, `queue_work_on`, `queue_delayed_work(_on)`,
/// `mod_delayed_work(_on)`.
///
/// Every call here never sleeps, allocates nothing and creates no thread, and may be made
/// from any context (hard-IRQ handlers and read-side sections included): it takes the
/// workqueue's raw lock for a few dozen nanoseconds and, when it queues the item, wakes one
/// idle worker. A successful enqueue takes exactly one reference to the item
/// (`Unmanaged.passRetained`) and nothing else; any other outcome takes nothing.
extension Workqueue {
    /// Queues `item` on the calling thread's CPU (`queue_work`, rust's `Queue::enqueue`).
    ///
    /// - Returns: `.queued`; `.alreadyPending` (it keeps its place; the kernel's false);
    ///   `.disabled`; `.refused` if the queue is draining or destroyed and the caller is not
    ///   one of its items (reported: `workqueue: cannot queue … on wq …`).
    @inlinable @discardableResult
    public func enqueue<Item: WorkItem>(_ item: Item) -> EnqueueResult {
        queueWork(item.work, item, cpu: -1)
    }

    /// Queues `item` on CPU `cpu`'s pool (`queue_work_on`). On an unbound queue the CPU only
    /// picks the pool, and there is one. A CPU the queue does not have is reported and
    /// refused.
    @inlinable @discardableResult
    public func queueOn<Item: WorkItem>(cpu: Int, _ item: Item) -> EnqueueResult {
        queueWork(item.work, item, cpu: cpu)
    }

    /// Arms `item`'s timer to queue it here after `delay` (`queue_delayed_work`); zero or
    /// less queues it now. The item is pending from now on.
    @inlinable @discardableResult
    public func queueDelayed<Item: DelayedWorkItem>(_ item: Item, delay: Duration) -> EnqueueResult {
        queueDelayedWork(item.delayedWork, item, cpu: -1, delay: delay)
    }

    /// `queueDelayed` for CPU `cpu`'s pool (`queue_delayed_work_on`).
    @inlinable @discardableResult
    public func queueDelayedOn<Item: DelayedWorkItem>(cpu: Int, _ item: Item, delay: Duration) -> EnqueueResult {
        queueDelayedWork(item.delayedWork, item, cpu: cpu, delay: delay)
    }

    /// Queues `item` here after `delay` whatever its state (`mod_delayed_work`): an armed
    /// timer is re-armed, a queued item taken off its list and queued again (keeping the
    /// reference it held). A disabled item is only cancelled.
    ///
    /// - Returns: Whether the item was pending (its timer or position changed); false if it
    ///   was idle (a running instance is not pending) and has now been queued.
    @inlinable @discardableResult
    public func modDelayed<Item: DelayedWorkItem>(_ item: Item, delay: Duration) -> Bool {
        modDelayedWork(item.delayedWork, item, cpu: -1, delay: delay)
    }

    /// `modDelayed` for CPU `cpu`'s pool (`mod_delayed_work_on`).
    @inlinable @discardableResult
    public func modDelayedOn<Item: DelayedWorkItem>(cpu: Int, _ item: Item, delay: Duration) -> Bool {
        modDelayedWork(item.delayedWork, item, cpu: cpu, delay: delay)
    }

    /// Queues `body` as a work item of its own (rust's `Queue::try_spawn`). Allocates the
    /// item (one object), so it is for process context; the item is released after it runs.
    @discardableResult
    public func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) -> EnqueueResult {
        enqueue(ClosureWork(name: name, body))
    }

    // MARK: - The common paths

    /// The queue reference: the one retain of a successful enqueue. Lock held.
    @inline(__always)
    private func takeReferenceLocked(_ work: Work, _ item: any WorkItem) {
        let object = item as AnyObject
        let identity = ItemReference(object)
        if _slowPath(work.owner != identity) {
            if work.owner != nil { Self.ownerMismatch(work, item) }
            work.owner = identity
            work.item = item
        }
        // SAFETY: the queue's reference, deliberately unbalanced here: the worker gives it
        // back after the run (`ItemReference.release()`), or a cancel does.
        _ = unsafe Unmanaged.passRetained(object)
    }

    @inline(never)
    private static func ownerMismatch(_ work: Work, _ item: any WorkItem) -> Never {
        fatalError("workqueue: a Work (\(work.name ?? "\(work.file):\(work.line)")) queued through a second owner, \(type(of: item)): each Work belongs to one WorkItem")
    }

    @usableFromInline
    final func queueWork(_ work: Work, _ item: any WorkItem, cpu: Int) -> EnqueueResult {
        work.notifyObserver()
        let core = WorkqueueCore.shared
        core.lock.lock()
        if _slowPath(work.disableCount != 0) {
            core.lock.unlock()
            return .disabled
        }
        if work.pending {
            core.lock.unlock()
            return .alreadyPending
        }
        guard _fastPath(acceptsLocked()) else { return refusedLocked(work, item) }
        guard let pwq = unsafe pwqRef(forCPU: cpu) else { return noSuchCPULocked(cpu, item) }
        takeReferenceLocked(work, item)
        work.pending = true
        work.queuedSeq &+= 1
        // SAFETY: pool shares live as long as their queue (see `pwqPointers`).
        let wake = unsafe pwq._withUnsafeGuaranteedRef { core.insertLocked(work, $0) }
        core.lock.unlock()
        wake.signal()
        return .queued
    }

    @usableFromInline
    final func queueDelayedWork(_ work: DelayedWork, _ item: any WorkItem, cpu: Int, delay: Duration) -> EnqueueResult {
        if delay <= .zero { return queueWork(work, item, cpu: cpu) }
        work.notifyObserver()
        let core = WorkqueueCore.shared
        let now = monotonicNanoseconds()
        core.lock.lock()
        if _slowPath(work.disableCount != 0) {
            core.lock.unlock()
            return .disabled
        }
        if work.pending {
            core.lock.unlock()
            return .alreadyPending
        }
        guard _fastPath(acceptsLocked(arming: true)) else { return refusedLocked(work, item) }
        guard let resolved = resolvedCPU(cpu) else { return noSuchCPULocked(cpu, item) }
        takeReferenceLocked(work, item)
        work.pending = true
        work.queuedSeq &+= 1
        let kick = core.timer.armLocked(work, queue: self, cpu: resolved, at: now &+ delay.clampedNanoseconds, now: now)
        core.lock.unlock()
        if kick { core.timer.kick() }
        return .queued
    }

    @usableFromInline
    final func modDelayedWork(_ work: DelayedWork, _ item: any WorkItem, cpu: Int, delay: Duration) -> Bool {
        work.notifyObserver()
        let core = WorkqueueCore.shared
        let now = monotonicNanoseconds()
        core.lock.lock()
        let (stolen, wakeAfterSteal) = core.grabPendingLocked(work)
        let wasPending = stolen != nil
        var refused = false
        var kick = false
        var wake = WakeUp.none
        if work.disableCount != 0 {
            // Cancelled only: the stolen reference is given back below.
        } else if !acceptsLocked(arming: delay > .zero) {
            refused = !warnedCannotQueue
            warnedCannotQueue = true
        } else if let resolved = resolvedCPU(cpu) {
            if stolen == nil { takeReferenceLocked(work, item) }
            work.pending = true
            work.queuedSeq &+= 1
            if delay > .zero {
                kick = core.timer.armLocked(work, queue: self, cpu: resolved, at: now &+ delay.clampedNanoseconds, now: now)
            } else {
                wake = core.insertLocked(work, pwq(cpu: resolved))
            }
            core.lock.unlock()
            wakeAfterSteal.signal()
            wake.signal()
            if kick { core.timer.kick() }
            if let stolen {
                WaitVar.wakeUp(stolen.work)
                WaitVar.wakeUp(stolen.queue)
            }
            return wasPending
        }
        core.lock.unlock()
        wakeAfterSteal.signal()
        if let stolen { core.giveBack(stolen) }
        if refused { reportCannotQueue(work) }
        return wasPending
    }

    /// An enqueue the queue does not take (draining, destroyed): reported once per queue,
    /// dropped. Lock held on entry, released here.
    @inline(never)
    private func refusedLocked(_ work: Work, _ item: any WorkItem) -> EnqueueResult {
        let report = !warnedCannotQueue
        warnedCannotQueue = true
        WorkqueueCore.shared.lock.unlock()
        if report { reportCannotQueue(work, function: "\(type(of: item)).run") }
        return .refused
    }

    @inline(never)
    private func noSuchCPULocked(_ cpu: Int, _ item: any WorkItem) -> EnqueueResult {
        WorkqueueCore.shared.lock.unlock()
        AtomicContext.warn(
            .warning,
            ["WARNING: workqueue: queue_work_on(\(cpu)) of \(type(of: item)).run on wq \(name): no such CPU (\(pwqCount) CPUs)"],
            function: "Workqueue.queueOn(cpu:_:)", log: log, file: #fileID, line: #line)
        return .refused
    }

    /// `__queue_work`'s `WARN_ONCE(…, "workqueue: cannot queue %ps on wq %s\n")`.
    func reportCannotQueue(_ work: Work, function: String? = nil) {
        WorkqueueReports.cannotQueue(function: function ?? work.functionName, queue: name, log: work.log ?? log)
    }
}

/// A closure queued as a work item (`Workqueue.spawn`, rust's `ClosureWork`).
final class ClosureWork: WorkItem {
    let work: Work
    let body: @Sendable () -> Void

    init(name: String, _ body: @escaping @Sendable () -> Void) {
        work = Work(name: name, lockdepLabel: "(work_completion)(&closure->work)")
        self.body = body
    }

    func run() { body() }
}
