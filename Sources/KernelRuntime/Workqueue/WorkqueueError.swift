import SystemPackage

/// Why a workqueue call failed. Each case changed nothing: no item was cancelled, disabled
/// or queued, and the queue is as it was.
public enum WorkqueueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The wait could end only after the calling work item returns (it flushes, cancels or
    /// disables itself, flushes, drains or destroys its own queue, or flushes an item
    /// queued behind it on a queue that runs one item at a time). Reported in lockdep's
    /// words and refused. Kernel: a lockdep report, then a deadlock. `EDEADLK`.
    case wouldDeadlock(reason: String)
    /// A sleeping call in atomic context, reported and refused. `EINVAL`, as elsewhere.
    case atomicContext(AtomicContextViolation)
    /// The timeout passed first (see `Deadline` for the policy). `ETIMEDOUT`.
    case timedOut(operation: String, after: Duration)
    /// `destroyQueue()` of a system workqueue (`events`, …): reported and refused. `EPERM`.
    case systemQueue(name: String)
    /// `destroyQueue()` of a queue that delayed work is still armed to queue on: reported and
    /// refused (the kernel would queue onto freed memory when the timer fires). `EBUSY`.
    case busy(queue: String, reason: String)
    /// The queue was already destroyed (or is being destroyed). `ENODEV`.
    case destroyed(queue: String)
    /// A worker or timer thread could not be started; nothing was created. The kernel's
    /// `alloc_workqueue` returns NULL (`ENOMEM`); the errno is `pthread_create`'s.
    case outOfResources(what: String, errno: Errno)
    /// A CPU the workqueue does not have (`queueOn(cpu:)`, `configure`), or a configuration
    /// value out of range. `EINVAL`.
    case invalidArgument(String)
    /// `Workqueue.configure` after the worker pools started. `EBUSY`.
    case alreadyStarted

    /// The errno the kernel would return.
    public var errno: Errno {
        switch self {
        case .wouldDeadlock: .deadlock
        case .atomicContext, .invalidArgument: .invalidArgument
        case .timedOut: .timedOut
        case .systemQueue: .notPermitted
        case .busy, .alreadyStarted: .resourceBusy
        case .destroyed: .operationNotSupportedByDevice  // ENODEV
        case .outOfResources(_, let errno): errno
        }
    }

    /// The message, ending with the errno, e.g. `workqueue q was destroyed (ENODEV)`.
    public var description: String {
        switch self {
        case .wouldDeadlock(let reason): "\(reason) (EDEADLK)"
        case .atomicContext(let violation): violation.report.headline
        case .timedOut(let operation, let after): "\(operation): timed out after \(after) (ETIMEDOUT)"
        case .systemQueue(let name): "workqueue \(name) is a system workqueue and cannot be destroyed (EPERM)"
        case .busy(let queue, let reason): "workqueue \(queue): \(reason) (EBUSY)"
        case .destroyed(let queue): "workqueue \(queue) was destroyed (ENODEV)"
        case .outOfResources(let what, let errno): "\(what): \(errno)"
        case .invalidArgument(let what): "\(what) (EINVAL)"
        case .alreadyStarted: "the workqueue pools have already started (EBUSY)"
        }
    }
}

/// What an enqueue did. Only `.queued` took a reference to the item (exactly one retain);
/// every other result took nothing, so the caller's reference is untouched: the Swift form
/// of rust's `Err(arc)` handing the `Arc` back.
public enum EnqueueResult: Sendable, Hashable, CustomStringConvertible {
    /// Queued (or, for delayed work, its timer armed): the queue holds one reference to the
    /// item until it has run or is cancelled. The kernel's `true`.
    case queued
    /// Already pending (queued, or its timer armed): nothing changed, and it keeps its place.
    /// The kernel's `false`.
    case alreadyPending
    /// The item is disabled (`disableWork`, `cancelWorkSync` in progress): refused. The
    /// kernel's `false`.
    case disabled
    /// The queue is draining or destroyed and the caller is not one of its own items, or the
    /// CPU does not exist: reported (`workqueue: cannot queue … on wq …`) and dropped. The
    /// kernel returns `true` here and leaves the item pending forever; irqemu leaves it idle.
    case refused

    /// Whether the item was queued by this call.
    public var isQueued: Bool { self == .queued }

    /// `queued`, `already pending`, `disabled` or `refused`.
    public var description: String {
        switch self {
        case .queued: "queued"
        case .alreadyPending: "already pending"
        case .disabled: "disabled"
        case .refused: "refused"
        }
    }
}

/// `alloc_workqueue`'s flags (include/linux/workqueue.h values).
public struct WorkqueueFlags: OptionSet, Sendable, Hashable {
    /// The kernel's `WQ_*` bits.
    public let rawValue: UInt32
    /// The flags whose `WQ_*` bits are `rawValue`.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `WQ_UNBOUND`: items run on the unbound pool's workers (`kworker/uP:N`), not on the
    /// queueing CPU's; `maxActive` is for the whole queue.
    public static let unbound = WorkqueueFlags(rawValue: 1 << 1)
    /// `WQ_FREEZABLE`: accepted, no effect (the emulation has no system suspend freezer).
    public static let freezable = WorkqueueFlags(rawValue: 1 << 2)
    /// `WQ_MEM_RECLAIM`: accepted, no effect (no rescuer thread: irqemu never runs short of
    /// memory to create workers; its pools' workers all exist from the start).
    public static let memReclaim = WorkqueueFlags(rawValue: 1 << 3)
    /// `WQ_HIGHPRI`: items run on the high-priority pools (`kworker/C:NH`). Workers of those
    /// pools ask for nice -20 and keep the default if the process may not raise priority.
    public static let highPri = WorkqueueFlags(rawValue: 1 << 4)
    /// `WQ_CPU_INTENSIVE`: accepted, no effect (concurrency management is not emulated).
    public static let cpuIntensive = WorkqueueFlags(rawValue: 1 << 5)
    /// `WQ_SYSFS`: accepted, no effect.
    public static let sysfs = WorkqueueFlags(rawValue: 1 << 6)
    /// `WQ_POWER_EFFICIENT`: accepted; per-CPU, as with `workqueue.power_efficient=0`.
    public static let powerEfficient = WorkqueueFlags(rawValue: 1 << 7)
    /// `WQ_PERCPU` (6.18+): per-CPU, which is already the default without `.unbound`.
    public static let percpu = WorkqueueFlags(rawValue: 1 << 8)
}
