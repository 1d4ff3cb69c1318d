/// The async overloads of the item calls that wait. Each makes on the calling task the
/// blocking call's checks and state changes (the sleeping-call check, the disable and
/// cancel, the timer fired, lockdep's note of the wait), with the same errors and reports;
/// then, if there is anything to wait for, a runtime worker thread (`irqemu-async/N`) waits
/// and resumes the task: no thread of Swift's concurrency pool ever waits for a work item.
/// In async code `try await item.cancelWorkSync()` resolves here.
///
/// Cancelling the task cancels nothing: a cancelled task's call still waits and returns
/// normally, nothing left half done.
extension WorkItem {
    /// `cancelWorkSync()`, suspended (`cancel_work_sync`): the item is disabled and
    /// cancelled on the calling task, and the call returns once it is neither pending nor
    /// running; an item that queues itself again from `run()` meanwhile is refused. It is
    /// enabled again on return.
    ///
    /// The wait for a running instance runs on a runtime worker thread; no thread of the
    /// concurrency pool waits. A cancelled task's call still waits and returns normally.
    ///
    /// - Returns: `Bool`: whether the item was pending.
    /// - Throws: As the blocking `cancelWorkSync()`: `atomicContext`; `invalidArgument` if
    ///   its disable count is at its limit. Each is reported and changed nothing.
    @discardableResult
    public func cancelWorkSync(file: StaticString = #fileID, line: UInt = #line) async throws(WorkqueueError) -> Bool {
        try await work.cancelSync(function: "cancelWorkSync()", keepDisabled: false, file: file, line: line)
    }

    /// `flushWork(timeout:)`, suspended (`flush_work`): returns once the item's last queued
    /// instance (the pending one, else the running one) has run. Later enqueues are not
    /// waited for, nor is an armed timer.
    ///
    /// The wait runs on a runtime worker thread; no thread of the concurrency pool waits. A
    /// cancelled task's call still waits and returns normally.
    ///
    /// - Parameters:
    ///   - timeout: Nil for no limit (see `Deadline` for the policy), counted from the call.
    ///   - file: The caller's `#fileID`, for reports.
    ///   - line: The caller's `#line`.
    /// - Returns: `Bool`: whether it waited (false if the item was idle).
    /// - Throws: As the blocking `flushWork(timeout:)`: `atomicContext` (reported);
    ///   `timedOut`. Nothing changed.
    @discardableResult
    public func flushWork(
        timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line
    ) async throws(WorkqueueError) -> Bool {
        try await work.flush(function: "flushWork()", timeout: timeout, fireTimer: false, file: file, line: line)
    }

    /// `disableWorkSync()`, suspended (`disable_work_sync`): the item is disabled and
    /// cancelled on the calling task, and the call returns once it is not running; it stays
    /// off (enqueues return `.disabled`) until `enableWork()`.
    ///
    /// The wait for a running instance runs on a runtime worker thread; no thread of the
    /// concurrency pool waits. A cancelled task's call still waits and returns normally.
    ///
    /// - Returns: `Bool`: whether the item was pending.
    /// - Throws: As the blocking `disableWorkSync()`: `atomicContext`; `invalidArgument` if
    ///   its disable count is at its limit. Each is reported and changed nothing.
    @discardableResult
    public func disableWorkSync(file: StaticString = #fileID, line: UInt = #line) async throws(WorkqueueError) -> Bool {
        try await work.cancelSync(function: "disableWorkSync()", keepDisabled: true, file: file, line: line)
    }
}

extension DelayedWorkItem {
    /// `flushDelayedWork(timeout:)`, suspended (`flush_delayed_work`): an armed timer is
    /// fired at once on the calling task (queueing the item where it was armed for), then
    /// the call returns once that instance has run, as the async `flushWork(timeout:)`.
    ///
    /// The wait runs on a runtime worker thread; no thread of the concurrency pool waits. A
    /// cancelled task's call still waits and returns normally.
    ///
    /// - Returns: `Bool`: whether it waited.
    /// - Throws: As the blocking `flushDelayedWork(timeout:)`: `atomicContext` (reported);
    ///   `timedOut`.
    @discardableResult
    public func flushDelayedWork(
        timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line
    ) async throws(WorkqueueError) -> Bool {
        try await delayedWork.flush(function: "flushDelayedWork()", timeout: timeout, fireTimer: true, file: file, line: line)
    }

    /// `cancelDelayedWorkSync()`, suspended (`cancel_delayed_work_sync`): once it returns
    /// the timer is disarmed and the item neither pending nor running, even if it re-arms
    /// itself from `run()`.
    ///
    /// The wait for a running instance runs on a runtime worker thread; no thread of the
    /// concurrency pool waits. A cancelled task's call still waits and returns normally.
    ///
    /// - Returns: `Bool`: whether the item was pending.
    /// - Throws: As the blocking `cancelDelayedWorkSync()`: `atomicContext`;
    ///   `invalidArgument`. Each is reported and changed nothing.
    @discardableResult
    public func cancelDelayedWorkSync(file: StaticString = #fileID, line: UInt = #line) async throws(WorkqueueError) -> Bool {
        try await delayedWork.cancelSync(function: "cancelDelayedWorkSync()", keepDisabled: false, file: file, line: line)
    }

    /// `disableDelayedWorkSync()`, suspended (`disable_delayed_work_sync`): the async
    /// `disableWorkSync()` for delayed work.
    ///
    /// The wait for a running instance runs on a runtime worker thread; no thread of the
    /// concurrency pool waits. A cancelled task's call still waits and returns normally.
    ///
    /// - Returns: `Bool`: whether the item was pending.
    /// - Throws: As the blocking `disableDelayedWorkSync()`: `atomicContext`;
    ///   `invalidArgument`. Each is reported and changed nothing.
    @discardableResult
    public func disableDelayedWorkSync(file: StaticString = #fileID, line: UInt = #line) async throws(WorkqueueError) -> Bool {
        try await delayedWork.cancelSync(function: "disableDelayedWorkSync()", keepDisabled: true, file: file, line: line)
    }
}

extension Work {
    /// The async `cancel_work_sync` / `disable_work_sync`: the part before the wait on the
    /// calling task, the wait and the part after on a runtime worker (only if an instance
    /// runs).
    final func cancelSync(function: String, keepDisabled: Bool, file: StaticString, line: UInt) async throws(WorkqueueError) -> Bool {
        let (wasPending, mustWait) = try cancelSyncPrepare(function: function, file: file, line: line)
        if mustWait {
            await BlockingPool.shared.run {
                self.waitUntilNotRunning()
                self.cancelSyncFinish(keepDisabled: keepDisabled)
            }
        } else {
            cancelSyncFinish(keepDisabled: keepDisabled)
        }
        return wasPending
    }

    /// The async `flush_work` / `flush_delayed_work`: the part before the wait on the
    /// calling task, the wait on a runtime worker (only if the instance has not finished).
    final func flush(function: String, timeout: Duration?, fireTimer: Bool, file: StaticString, line: UInt) async throws(WorkqueueError) -> Bool {
        let deadline = Deadline.after(timeout)
        guard let target = try flushPrepare(function: function, fireTimer: fireTimer, file: file, line: line) else { return false }
        if WorkqueueCore.shared.lock.withLock({ instanceFinishedLocked(target) }) { return true }
        let finished = await BlockingPool.shared.run { self.waitUntilFinished(target, until: deadline) }
        if !finished { throw .timedOut(operation: "\(function) of \(functionName)", after: timeout ?? .zero) }
        return true
    }
}
