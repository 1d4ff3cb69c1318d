/// Waiting on a whole queue: `flush_workqueue`, `drain_workqueue`, `destroy_workqueue`.
///
/// Each is a sleeping call, checked, and refused from one of the queue's own items (it
/// would wait for itself: reported in lockdep's words). Each is split into a part before
/// its wait, the wait, and a part after, so an `async` form can share the first and last.
extension Workqueue {
    /// Waits until every item queued before the call has run (`flush_workqueue`); items
    /// queued meanwhile are not waited for (flush colours), and neither are armed timers.
    ///
    /// - Parameters:
    ///   - timeout: Nil for no limit (see `Deadline` for the policy).
    ///   - file: The caller's `#fileID`, for reports.
    ///   - line: The caller's `#line`.
    /// - Throws: `atomicContext`; `wouldDeadlock` from one of the queue's own items
    ///   (reported); `timedOut`. Nothing changed (a flush that timed out has advanced the
    ///   queue's flush colour, which nothing observes).
    @available(*, noasync, message: "waits for the queue's items")
    public func flushQueue(timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) {
        try refuseSleepOrSelfWait("flushQueue()", file: file, line: line)
        WorkqueueLockdep.willWait(for: self, function: "__flush_workqueue", file: file, line: line)
        try flushUnchecked(deadline: .after(timeout), timeout: timeout)
    }

    /// Flushes until the queue is empty (`drain_workqueue`): while it drains, only the
    /// queue's own items (chained work) may queue on it; any other enqueue, and any timer
    /// that fires for it, is reported (`workqueue: cannot queue … on wq …`, once per queue)
    /// and dropped. Armed timers are not waited for.
    ///
    /// - Throws: `atomicContext`; `wouldDeadlock` from one of the queue's own items
    ///   (reported); `destroyed`. Nothing changed.
    @available(*, noasync, message: "waits for the queue's items")
    public func drainQueue(file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) {
        try refuseSleepOrSelfWait("drainQueue()", file: file, line: line)
        WorkqueueLockdep.willWait(for: self, function: "__flush_workqueue", file: file, line: line)
        try drainPrepare()
        drainUnchecked()
        drainFinish()
    }

    /// Drains the queue, then removes it (`destroy_workqueue`): it takes no item ever after
    /// (an enqueue is reported and refused), and the registry lets go of it.
    ///
    /// - Throws: `atomicContext`; `wouldDeadlock` from one of its own items; `systemQueue`
    ///   for a system queue; `busy` if a delayed item's timer is armed to queue on it (the
    ///   kernel would queue onto freed memory when it fires); `destroyed` if it was already.
    ///   Each is reported (but `destroyed`) and changed nothing.
    @available(*, noasync, message: "waits for the queue's items")
    public func destroyQueue(file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) {
        try destroyPrepare(file: file, line: line)
        WorkqueueLockdep.willWait(for: self, function: "__flush_workqueue", file: file, line: line)
        drainUnchecked()
        destroyFinish()
    }

    // MARK: - The parts

    /// The sleeping-call check and the self-wait check of the queue-level calls.
    func refuseSleepOrSelfWait(_ function: String, file: StaticString, line: UInt) throws(WorkqueueError) {
        do {
            try AtomicContext.mightSleep(function, log: log, file: file, line: line)
        } catch { throw .atomicContext(error) }
        if let worker = Worker.current, let pwq = worker.currentPWQ, pwq.queue === self {
            let item = worker.current.map { $0.functionName } ?? "?"
            throw WorkqueueReports.selfWait(
                function: function, map: lockdepMap,
                reason: "\(function) of workqueue \(name) from its own item \(item) would wait for itself",
                log: log, file: file, line: line)
        }
    }

    /// Advances the flush colour and waits until every older colour has drained.
    func flushUnchecked(deadline: Deadline, timeout: Duration?) throws(WorkqueueError) {
        let core = WorkqueueCore.shared
        // A colour is reused 16 flushes later: wait until its last user has drained (it is
        // older than what this flush waits for anyway).
        var target: UInt64
        while true {
            if let advanced = advanceColor() {
                target = advanced
                break
            }
            let freed = WaitVar.wait(on: self, until: deadline) {
                core.lock.withLock { inFlight[currentColor &+ 1] == 0 }
            }
            if !freed { throw .timedOut(operation: "flushQueue() of workqueue \(name)", after: timeout ?? .zero) }
        }
        try waitForColors(upTo: target, deadline: deadline, timeout: timeout)
    }

    /// Advances the flush colour if the next one is free (never waits); returns the colour
    /// the flush waits for, or nil if the next colour is still in use.
    func advanceColor() -> UInt64? {
        WorkqueueCore.shared.lock.withLock { () -> UInt64? in
            guard inFlight[currentColor &+ 1] == 0 else { return nil }
            let target = currentColor
            currentColor &+= 1
            return target
        }
    }

    /// Waits until no item of colour `target` or older is in flight.
    func waitForColors(upTo target: UInt64, deadline: Deadline, timeout: Duration?) throws(WorkqueueError) {
        let core = WorkqueueCore.shared
        let done = WaitVar.wait(on: self, until: deadline) { core.lock.withLock { colorsDrainedLocked(upTo: target) } }
        if !done { throw .timedOut(operation: "flushQueue() of workqueue \(name)", after: timeout ?? .zero) }
    }

    /// Whether no item of colour `target` or older is in flight. Lock held.
    func colorsDrainedLocked(upTo target: UInt64) -> Bool {
        // Live colours are within the last 16 (a colour is reused only once drained).
        let oldest = currentColor >= UInt64(Self.colorCount) ? currentColor - UInt64(Self.colorCount - 1) : 0
        guard target >= oldest else { return true }
        var color = oldest
        while color <= target {
            if inFlight[color] != 0 { return false }
            color &+= 1
        }
        return true
    }

    /// The part of `drainQueue` before its wait: refused once destroyed; marks the queue
    /// draining.
    func drainPrepare() throws(WorkqueueError) {
        try WorkqueueCore.shared.lock.withLock { () throws(WorkqueueError) in
            guard lifecycle == .alive else { throw .destroyed(queue: name) }
            draining += 1
        }
    }

    /// Flushes until nothing is queued or running, warning as the kernel does when it takes
    /// many rounds (chained items keep queueing).
    func drainUnchecked() {
        let core = WorkqueueCore.shared
        var rounds = 0
        while true {
            try? flushUnchecked(deadline: .never, timeout: nil)
            if core.lock.withLock({ queued == 0 && running == 0 }) { return }
            rounds += 1
            if rounds == 10 || (rounds % 100 == 0 && rounds <= 1000) {
                (log ?? KernelLog.current).printk("workqueue \(name): drain_workqueue() isn't complete after \(rounds) tries")
            }
        }
    }

    /// The part of `drainQueue` after its wait: the queue takes enqueues again.
    func drainFinish() {
        WorkqueueCore.shared.lock.withLock { draining -= 1 }
    }

    /// The part of `destroyQueue` before its wait: the checks, then the queue is marked
    /// destroying (it takes only its own items' enqueues).
    func destroyPrepare(file: StaticString, line: UInt) throws(WorkqueueError) {
        if isSystem {
            do {
                try AtomicContext.mightSleep("destroyQueue()", log: log, file: file, line: line)
            } catch { throw .atomicContext(error) }
            WorkqueueReports.destroySystemQueue(name, log: log, file: file, line: line)
            throw .systemQueue(name: name)
        }
        try refuseSleepOrSelfWait("destroyQueue()", file: file, line: line)
        let core = WorkqueueCore.shared
        let armed = try core.lock.withLock { () throws(WorkqueueError) -> Int in
            guard lifecycle == .alive else { throw .destroyed(queue: name) }
            if armedTimers > 0 { return armedTimers }
            lifecycle = .destroying
            return 0
        }
        if armed > 0 {
            WorkqueueReports.destroyWithArmedTimers(name, count: armed, log: log, file: file, line: line)
            throw .busy(queue: name, reason: "\(armed) delayed work timer(s) armed to queue on it")
        }
    }

    /// The part of `destroyQueue` after its wait: destroyed, and out of the registry.
    func destroyFinish() {
        let core = WorkqueueCore.shared
        core.lock.withLock {
            lifecycle = .destroyed
            core.queues.removeAll { $0 === self }
        }
    }
}
