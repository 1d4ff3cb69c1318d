/// A class that does work on a workqueue: rust's `WorkItem` with `HasWork`, the Swift way.
///
/// The class stores its `Work` (`let work = Work()`) and says what to do in `run()`.
/// `Workqueue.enqueue(_:)` takes one reference to it while it is pending or running; `run()`
/// is called on a kworker thread in process context (it may sleep, and the checker watches
/// it), never concurrently with itself.
///
/// The calls on a pending or running item are here, with the kernel's names:
/// `cancelWork()`, `cancelWorkSync()`, `flushWork()`, `disableWork()`, `disableWorkSync()`,
/// `enableWork()`; `work.isPending` and `Workqueue.currentWork` read its state.
public protocol WorkItem: AnyObject, Sendable {
    /// The item's queue state, stored in it: `let work = Work()`. Return the same object
    /// every time.
    var work: Work { get }
    /// The work. Runs on a kworker in process context, under the checker; a run that returns
    /// holding a spinlock, inside a read section or with interrupts off is reported
    /// (`BUG: workqueue leaked lock or atomic`). Items receive no `Device.Bound`.
    func run()
}

/// A `WorkItem` with a timer: rust's `HasDelayedWork`. The class stores a `DelayedWork`
/// (`let delayedWork = DelayedWork()`), which is also its `work`; do not declare a separate
/// `work` property.
public protocol DelayedWorkItem: WorkItem {
    /// The item's queue and timer state, stored in it.
    var delayedWork: DelayedWork { get }
}

extension DelayedWorkItem {
    /// The `DelayedWork`, as the item's `Work`.
    public var work: Work { delayedWork }
}

// MARK: - Cancel, flush, disable

extension WorkItem {
    /// Takes the item off its queue if it is pending (`cancel_work`). Does not wait for a
    /// running instance. Never sleeps; callable from any context, hard-IRQ handlers
    /// included. The queue's reference is given back here, or, in atomic context, by a
    /// worker. A delayed item's timer is disarmed too.
    ///
    /// - Returns: Whether the item was pending.
    @discardableResult
    public func cancelWork() -> Bool { work.cancel(function: "cancelWork()") }

    /// Cancels the item and waits until it is neither pending nor running
    /// (`cancel_work_sync`). While it waits the item is disabled, so an item that queues
    /// itself again (or re-arms its timer) from `run()` is refused, and stays idle once this
    /// returns; it is enabled again on return.
    ///
    /// - Returns: Whether the item was pending.
    /// - Throws: `atomicContext` in atomic context (a sleeping call); `wouldDeadlock` from
    ///   the item's own `run()` (reported in lockdep's words); `invalidArgument` if its
    ///   disable count is at its limit. Nothing changed.
    @available(*, noasync, message: "waits for the running item")
    @discardableResult
    public func cancelWorkSync(file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) -> Bool {
        try work.cancelSync(function: "cancelWorkSync()", keepDisabled: false, file: file, line: line)
    }

    /// Waits until the item's last queued instance has run (`flush_work`): the pending one,
    /// else the running one. Later enqueues are not waited for. An armed timer is not waited
    /// for either (`flushDelayedWork()` fires it first).
    ///
    /// - Parameters:
    ///   - timeout: Nil for no limit (see `Deadline` for the policy).
    ///   - file: The caller's `#fileID`, for reports.
    ///   - line: The caller's `#line`.
    /// - Returns: Whether it waited (false if the item was idle).
    /// - Throws: `atomicContext`; `wouldDeadlock` from the item's own `run()`, or from an
    ///   item running on a queue that runs one item at a time (ordered) when this item is
    ///   queued behind it there (reported); `timedOut`. Nothing changed.
    @available(*, noasync, message: "waits for the item")
    @discardableResult
    public func flushWork(timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) -> Bool {
        try work.flush(function: "flushWork()", timeout: timeout, fireTimer: false, file: file, line: line)
    }

    /// Disables the item and cancels it if pending (`disable_work`): enqueues are refused
    /// until a matching `enableWork()`. Does not wait for a running instance. Never sleeps;
    /// callable from any context.
    ///
    /// - Returns: Whether the item was pending.
    @discardableResult
    public func disableWork(file: StaticString = #fileID, line: UInt = #line) -> Bool {
        work.disable(function: "disableWork()", file: file, line: line)
    }

    /// `disableWork()`, then waits until the item is not running (`disable_work_sync`): once
    /// it returns the item is neither pending nor running, and stays off until
    /// `enableWork()`. What unbind does to managed work (`Device.addWork`).
    ///
    /// - Returns: Whether the item was pending.
    /// - Throws: `atomicContext`; `wouldDeadlock` from the item's own `run()` (reported);
    ///   `invalidArgument` if its disable count is at its limit. Nothing changed.
    @available(*, noasync, message: "waits for the running item")
    @discardableResult
    public func disableWorkSync(file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) -> Bool {
        try work.cancelSync(function: "disableWorkSync()", keepDisabled: true, file: file, line: line)
    }

    /// Undoes one `disableWork()` (`enable_work`). An unbalanced call is reported
    /// (`workqueue: work disable count underflowed`) and changes nothing. Never sleeps.
    ///
    /// - Returns: Whether the item is enabled now (the count reached 0).
    @discardableResult
    public func enableWork(file: StaticString = #fileID, line: UInt = #line) -> Bool {
        work.enable(file: file, line: line)
    }
}

extension DelayedWorkItem {
    /// Disarms the timer, or takes the item off its queue, if it is pending
    /// (`cancel_delayed_work`). No allocation, no wait; any context.
    ///
    /// - Returns: Whether the item was pending.
    @discardableResult
    public func cancelDelayedWork() -> Bool { delayedWork.cancel(function: "cancelDelayedWork()") }

    /// Fires an armed timer at once (queueing the item where it was armed for), then
    /// `flushWork()` (`flush_delayed_work`).
    ///
    /// - Returns: Whether it waited.
    /// - Throws: as `flushWork()`.
    @available(*, noasync, message: "waits for the item")
    @discardableResult
    public func flushDelayedWork(timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) -> Bool {
        try delayedWork.flush(function: "flushDelayedWork()", timeout: timeout, fireTimer: true, file: file, line: line)
    }

    /// `cancelWorkSync()` for delayed work (`cancel_delayed_work_sync`): once it returns
    /// the timer is disarmed and the item neither pending nor running, even if it re-arms
    /// itself from `run()`.
    @available(*, noasync, message: "waits for the running item")
    @discardableResult
    public func cancelDelayedWorkSync(file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) -> Bool {
        try delayedWork.cancelSync(function: "cancelDelayedWorkSync()", keepDisabled: false, file: file, line: line)
    }

    /// `disableWork()` for delayed work (`disable_delayed_work`).
    @discardableResult
    public func disableDelayedWork(file: StaticString = #fileID, line: UInt = #line) -> Bool {
        delayedWork.disable(function: "disableDelayedWork()", file: file, line: line)
    }

    /// `disableWorkSync()` for delayed work (`disable_delayed_work_sync`).
    @available(*, noasync, message: "waits for the running item")
    @discardableResult
    public func disableDelayedWorkSync(file: StaticString = #fileID, line: UInt = #line) throws(WorkqueueError) -> Bool {
        try delayedWork.cancelSync(function: "disableDelayedWorkSync()", keepDisabled: true, file: file, line: line)
    }

    /// `enableWork()` for delayed work (`enable_delayed_work`).
    @discardableResult
    public func enableDelayedWork(file: StaticString = #fileID, line: UInt = #line) -> Bool {
        delayedWork.enable(file: file, line: line)
    }
}
