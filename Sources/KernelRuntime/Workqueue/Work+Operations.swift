/// The item-level calls behind `WorkItem`'s `cancelWork()`, `cancelWorkSync()`,
/// `flushWork()`, `disableWork()`, `disableWorkSync()`, `enableWork()` and their delayed
/// forms (kernel/workqueue.c's 6.10+ cancel/disable machinery).
///
/// Each sync call is split into what it does before its wait, the wait, and what it does
/// after, so an `async` form can share the first and last parts and wait differently.
extension Work {
    // MARK: - Non-sync

    /// `cancel_work` / `cancel_delayed_work`: never sleeps.
    final func cancel(function: String) -> Bool {
        let core = WorkqueueCore.shared
        core.lock.lock()
        let (stolen, wake) = core.grabPendingLocked(self)
        core.lock.unlock()
        wake.signal()
        noteNoWait(function)
        guard let stolen else { return false }
        core.giveBack(stolen)
        return true
    }

    /// Tells the device whose driver callback runs here, if any, of a cancel or disable
    /// that did not wait: one thread-local load otherwise. Not from the item's own run.
    @inline(__always)
    private func noteNoWait(_ function: String) {
        guard _slowPath(unsafe ThreadState.deviceScope != nil) else { return }
        if let worker = Worker.current, worker.current === self { return }
        ThreadState.deviceInScope?.workCancelledWithoutWaiting(self, function: function)
    }

    /// `disable_work` / `disable_delayed_work`: never sleeps.
    final func disable(function: String, file: StaticString, line: UInt) -> Bool {
        let core = WorkqueueCore.shared
        core.lock.lock()
        guard disableCount < .max else {
            core.lock.unlock()
            WorkqueueReports.disableCount(overflowed: true, work: self, file: file, line: line)
            return false
        }
        disableCount += 1
        let (stolen, wake) = core.grabPendingLocked(self)
        core.lock.unlock()
        wake.signal()
        noteNoWait(function)
        guard let stolen else { return false }
        core.giveBack(stolen)
        return true
    }

    /// `enable_work` / `enable_delayed_work`: never sleeps.
    final func enable(file: StaticString, line: UInt) -> Bool {
        let core = WorkqueueCore.shared
        core.lock.lock()
        guard disableCount > 0 else {
            core.lock.unlock()
            WorkqueueReports.disableCount(overflowed: false, work: self, file: file, line: line)
            return false
        }
        disableCount -= 1
        let enabled = disableCount == 0
        core.lock.unlock()
        return enabled
    }

    // MARK: - Cancel and disable, waiting

    /// `cancel_work_sync` (`keepDisabled` false) or `disable_work_sync` (true), and their
    /// delayed forms.
    final func cancelSync(function: String, keepDisabled: Bool, file: StaticString, line: UInt) throws(WorkqueueError) -> Bool {
        let (wasPending, mustWait) = try cancelSyncPrepare(function: function, file: file, line: line)
        if mustWait { waitUntilNotRunning() }
        cancelSyncFinish(keepDisabled: keepDisabled)
        return wasPending
    }

    /// The wait: sleeps until no worker runs the item.
    final func waitUntilNotRunning() {
        WaitVar.wait(on: self) { WorkqueueCore.shared.lock.withLock { runningOn == nil } }
    }

    /// The part before the wait: the checks, then disable (so a running instance cannot queue
    /// itself again) and cancel. Returns whether it was pending and whether an instance runs.
    final func cancelSyncPrepare(function: String, file: StaticString, line: UInt) throws(WorkqueueError) -> (Bool, Bool) {
        do {
            try AtomicContext.mightSleep(function, log: log, file: file, line: line)
        } catch { throw .atomicContext(error) }
        if let worker = Worker.current, worker.current === self {
            throw WorkqueueReports.selfWait(
                function: function, map: lockdepMap, instance: UInt(bitPattern: ObjectIdentifier(self)),
                reason: "\(function) of \(functionName) from its own run would wait for itself", log: log, file: file, line: line)
        }
        let core = WorkqueueCore.shared
        core.lock.lock()
        if disableCount == .max {
            core.lock.unlock()
            WorkqueueReports.disableCount(overflowed: true, work: self, file: file, line: line)
            throw .invalidArgument("\(function): disable count of \(functionName) at its limit")
        }
        disableCount += 1
        let (stolen, wake) = core.grabPendingLocked(self)
        let running = runningOn != nil
        core.lock.unlock()
        wake.signal()
        if let stolen { core.giveBack(stolen) }
        // Noted whether or not an instance runs: a sync cancel under a lock the item takes is
        // reported whatever the timing.
        WorkqueueLockdep.willWait(for: self, queue: nil, oneAtATime: false, function: "__flush_work", file: file, line: line)
        return (stolen != nil, running)
    }

    /// The part after the wait: enables again, unless it is `disable_work_sync`.
    final func cancelSyncFinish(keepDisabled: Bool) {
        guard !keepDisabled else { return }
        WorkqueueCore.shared.lock.withLock { disableCount -= 1 }
    }

    // MARK: - Flush

    /// `flush_work` (`fireTimer` false) or `flush_delayed_work` (true).
    final func flush(function: String, timeout: Duration?, fireTimer: Bool, file: StaticString, line: UInt) throws(WorkqueueError) -> Bool {
        guard let target = try flushPrepare(function: function, fireTimer: fireTimer, file: file, line: line) else { return false }
        if !waitUntilFinished(target, until: .after(timeout)) {
            throw .timedOut(operation: "\(function) of \(functionName)", after: timeout ?? .zero)
        }
        return true
    }

    /// The wait: sleeps until instance `target` has finished or `deadline` passes; returns
    /// whether it finished.
    final func waitUntilFinished(_ target: UInt64, until deadline: Deadline) -> Bool {
        WaitVar.wait(on: self, until: deadline) { WorkqueueCore.shared.lock.withLock { instanceFinishedLocked(target) } }
    }

    /// The part before the wait: the checks, the timer fired if asked, and the instance to
    /// wait for (nil: the item is idle).
    final func flushPrepare(function: String, fireTimer: Bool, file: StaticString, line: UInt) throws(WorkqueueError) -> UInt64? {
        do {
            try AtomicContext.mightSleep(function, log: log, file: file, line: line)
        } catch { throw .atomicContext(error) }
        let worker = Worker.current
        if let worker, worker.current === self {
            throw WorkqueueReports.selfWait(
                function: function, map: lockdepMap, instance: UInt(bitPattern: ObjectIdentifier(self)),
                reason: "\(function) of \(functionName) from its own run would wait for itself", log: log, file: file, line: line)
        }
        let core = WorkqueueCore.shared
        core.lock.lock()
        // Queued (or about to be, by the timer fired below) behind the caller's own item on a
        // queue-on-a-pool that runs one item at a time: it can run only after the caller
        // returns.
        if let worker, let running = worker.currentPWQ, running.maxActive == 1, pending {
            var behind = pwq === running
            if isDelayed, fireTimer {
                let dw = asDelayed
                if dw.armed { behind = dw.targetQueue!.pwq(cpu: dw.targetCPU) === running }
            }
            if behind {
                core.lock.unlock()
                let queue = running.queue
                throw WorkqueueReports.selfWait(
                    function: function, map: queue.lockdepMap,
                    reason: "\(function) of \(functionName), queued behind the caller on \(queue.isOrdered ? "ordered " : "")workqueue \(queue.name), would wait for the caller",
                    log: log, file: file, line: line)
            }
        }
        var wake = WakeUp.none
        var refused: WorkqueueCore.Refused?
        if isDelayed, fireTimer, asDelayed.armed {
            (wake, refused) = core.timer.fireNowLocked(asDelayed)
        }
        // The last queued instance: the pending one (not one on its timer, which flush_work
        // does not wait for), else the running one.
        var target: UInt64?
        var waitedQueue: Workqueue?
        if pending && !(isDelayed && asDelayed.armed) {
            target = queuedSeq
            waitedQueue = pwq?.queue
        } else if runningOn != nil {
            target = runningSeq
            waitedQueue = runningOn?.currentPWQ?.queue
        }
        core.lock.unlock()
        // Noted whether or not the item is pending: a flush under a lock the item takes is
        // reported whatever the timing.
        WorkqueueLockdep.willWait(
            for: self, queue: waitedQueue, oneAtATime: waitedQueue?.maxActive == 1, function: "__flush_work", file: file, line: line)
        wake.signal()
        if let refused {
            if refused.report { refused.stolen.queue.reportCannotQueue(self) }
            core.giveBack(refused.stolen)
        }
        return target
    }

    /// Whether instance `target` has finished: it is neither the running nor the pending one
    /// (instances are numbered in order; one cancelled counts as finished). Lock held.
    final func instanceFinishedLocked(_ target: UInt64) -> Bool {
        (runningOn == nil || runningSeq > target) && (!pending || queuedSeq > target)
    }
}
