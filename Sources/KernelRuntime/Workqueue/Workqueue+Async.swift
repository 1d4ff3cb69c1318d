/// The async overloads of the queue calls that wait. Each makes on the calling task the
/// blocking call's checks and state changes (the sleeping-call check, the flush colour
/// advanced, the queue marked draining or destroying, lockdep's note of the wait), with the
/// same errors and reports; then a runtime worker thread (`irqemu-async/N`) waits and
/// resumes the task: no thread of Swift's concurrency pool ever waits for a queue's items.
/// In async code `try await queue.flushQueue()` resolves here.
///
/// Cancelling the task cancels nothing: a cancelled task's call still waits and returns
/// normally, nothing left half done (a drain ends, a destroy completes).
extension Workqueue {
    /// `flushQueue(timeout:)`, suspended (`flush_workqueue`): returns once every item
    /// queued before the call has run. Items queued meanwhile are not waited for (the flush
    /// colour advances on the calling task), and neither are armed timers; when every colour
    /// is in use, the worker waits for one and advances it there, as the blocking call
    /// would, so items queued until then are waited for too.
    ///
    /// The wait runs on a runtime worker thread; no thread of the concurrency pool waits. A
    /// cancelled task's call still waits and returns normally.
    ///
    /// Returns `Void`, once the items queued before the call have run.
    ///
    /// - Parameters:
    ///   - timeout: Nil for no limit (see `Deadline` for the policy), counted from the call.
    ///   - file: The caller's `#fileID`, for reports.
    ///   - line: The caller's `#line`.
    /// - Throws: As the blocking `flushQueue(timeout:)`: `atomicContext` (reported);
    ///   `timedOut`. Nothing changed.
    public func flushQueue(timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line) async throws(WorkqueueError) {
        try refuseSleepOrSelfWait("flushQueue()", file: file, line: line)
        WorkqueueLockdep.willWait(for: self, function: "__flush_workqueue", file: file, line: line)
        let deadline = Deadline.after(timeout)
        guard let target = advanceColor() else {
            // The next colour is still in use: the worker waits for it, then flushes.
            try await BlockingPool.shared.run { () throws(WorkqueueError) in
                try self.flushUnchecked(deadline: deadline, timeout: timeout)
            }
            return
        }
        if WorkqueueCore.shared.lock.withLock({ colorsDrainedLocked(upTo: target) }) { return }
        try await BlockingPool.shared.run { () throws(WorkqueueError) in
            try self.waitForColors(upTo: target, deadline: deadline, timeout: timeout)
        }
    }

    /// `drainQueue()`, suspended (`drain_workqueue`): the queue is marked draining on the
    /// calling task (from then on only its own items may queue on it; any other enqueue,
    /// and any timer that fires for it, is reported and dropped), and the call returns once
    /// it is empty. Armed timers are not waited for.
    ///
    /// The wait runs on a runtime worker thread; no thread of the concurrency pool waits. A
    /// cancelled task's call still drains and returns normally (the queue takes enqueues
    /// again).
    ///
    /// Returns `Void`, once nothing is queued or running on the queue.
    ///
    /// - Throws: As the blocking `drainQueue()`: `atomicContext` (reported); `destroyed`.
    ///   Nothing changed.
    public func drainQueue(file: StaticString = #fileID, line: UInt = #line) async throws(WorkqueueError) {
        try refuseSleepOrSelfWait("drainQueue()", file: file, line: line)
        WorkqueueLockdep.willWait(for: self, function: "__flush_workqueue", file: file, line: line)
        try drainPrepare()
        await BlockingPool.shared.run {
            self.drainUnchecked()
            self.drainFinish()
        }
    }

    /// `destroyQueue()`, suspended (`destroy_workqueue`): the checks are made and the queue
    /// marked destroying on the calling task; the call returns once it is drained and
    /// removed (it takes no item ever after, and the registry lets go of it).
    ///
    /// The wait runs on a runtime worker thread; no thread of the concurrency pool waits. A
    /// cancelled task's call still destroys the queue and returns normally.
    ///
    /// Returns `Void`, once the queue is destroyed.
    ///
    /// - Throws: As the blocking `destroyQueue()`: `atomicContext`; `systemQueue` for a
    ///   system queue; `busy` if a delayed item's timer is armed to queue on it;
    ///   `destroyed` if it was already. Each is reported (but `destroyed`) and changed
    ///   nothing.
    public func destroyQueue(file: StaticString = #fileID, line: UInt = #line) async throws(WorkqueueError) {
        try destroyPrepare(file: file, line: line)
        WorkqueueLockdep.willWait(for: self, function: "__flush_workqueue", file: file, line: line)
        await BlockingPool.shared.run {
            self.drainUnchecked()
            self.destroyFinish()
        }
    }
}
