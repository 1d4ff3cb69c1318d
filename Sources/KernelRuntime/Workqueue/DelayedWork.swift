/// A work item with a timer: the kernel's `struct delayed_work`, rust's `DelayedWork<T>`.
///
/// Store one in the class that does the work and conform that class to `DelayedWorkItem`
/// (its `work` is this object). `Workqueue.queueDelayed(_:delay:)` arms the timer; when it
/// expires, the item is queued on the queue and CPU it was armed for. The item is pending
/// the whole time the timer is armed.
///
/// Timers are intrusive: the one timer thread keeps armed items in a pairing heap linked
/// through this object, so arming, re-arming (`modDelayed`) and cancelling allocate nothing
/// and may be called from any context. A timer never fires before its delay has passed;
/// how late it fires is measured (`Workqueue.timerLateness`).
@safe
public final class DelayedWork: Work, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): every `var` is only touched with `WorkqueueCore.lock`
    // held. The unretained links point at armed items (pending: alive) and at the target
    // queue, which cannot be destroyed while a timer is armed for it.

    /// Whether the timer is armed (the item is pending on it, on no list).
    var armed = false
    /// When it expires (monotonic ns), and the order it was armed in (ties fire in order).
    var expires: UInt64 = 0
    var timerSequence: UInt64 = 0
    /// When it was armed: lateness is measured from `expires`, not from here.
    var armedAt: UInt64 = 0
    unowned(unsafe) private var _heapChild: DelayedWork?
    unowned(unsafe) private var _heapSibling: DelayedWork?
    unowned(unsafe) private var _heapPrevious: DelayedWork?
    unowned(unsafe) private var _targetQueue: Workqueue?
    /// The pairing heap's links.
    var heapChild: DelayedWork? { get { unsafe _heapChild } set { unsafe _heapChild = newValue } }
    var heapSibling: DelayedWork? { get { unsafe _heapSibling } set { unsafe _heapSibling = newValue } }
    /// The parent if this is its first child, else the previous sibling.
    var heapPrevious: DelayedWork? { get { unsafe _heapPrevious } set { unsafe _heapPrevious = newValue } }
    /// Where the timer queues the item (`dwork->wq`, `dwork->cpu`).
    var targetQueue: Workqueue? { get { unsafe _targetQueue } set { unsafe _targetQueue = newValue } }
    var targetCPU = 0

    /// A delayed work item's state, to be stored in its owner (`INIT_DELAYED_WORK`,
    /// `new_delayed_work!`). See `Work.init(name:log:file:line:)`.
    public override init(name: String? = nil, log: KernelLog? = nil, file: StaticString = #fileID, line: UInt = #line) {
        super.init(delayedName: name, log: log, file: file, line: line)
    }

    /// Whether the timer is armed now (`timer_pending(&dwork->timer)`). Racy by nature.
    public var isTimerArmed: Bool { WorkqueueCore.shared.lock.withLock { armed } }
}
