import CSupport
import Glibc

/// A workqueue: the kernel's `struct workqueue_struct`, rust's `Queue`.
///
/// Items queued on it run on kworker threads, in process context, under the checker. The
/// system queues are `system` (`events`), `systemHighPri` (`events_highpri`) and
/// `systemUnbound` (`events_unbound`); `Workqueue(name:flags:maxActive:)` and
/// `Workqueue.ordered(name:)` allocate more.
///
/// - Per-CPU queues (the default) have one worker pool per emulated CPU
///   (`Workqueue.cpuCount`, workers `kworker/C:N`, `kworker/C:NH` for `.highPri`): an item
///   runs on the pool of the CPU it was queued on: `queueOn(cpu:_:)`, or the calling
///   thread's CPU (a dispatcher's or a per-CPU worker's emulated CPU, else the host CPU it
///   runs on, modulo the CPU count). `maxActive` is per CPU.
/// - Unbound queues (`.unbound`) run on the unbound pool (`kworker/uP:N`, P the pool id);
///   `maxActive` is for the whole queue. Ordered queues are unbound with one active item,
///   run in queueing order.
/// - Pools are shared by every queue of the same kind, start (all their workers) with the
///   first queue that needs them, and live as long as the process. Concurrency management
///   is not emulated (see `WorkerPool`): a pool has a fixed number of workers
///   (`configure(cpus:hostCPUs:workersPerPool:unboundWorkers:)`).
///
/// Enqueueing (`enqueue`, `queueOn`, `queueDelayed`, `modDelayed`) never sleeps, never
/// allocates and never creates a thread: it is allowed from any context, hard-IRQ handlers
/// and read-side sections included. A successful enqueue takes exactly one reference to the
/// item (`Unmanaged.passRetained`) and nothing else.
///
/// A queue stays registered, and alive, until `destroyQueue()`; dropping every reference to
/// it without destroying it leaks it, as a forgotten `destroy_workqueue` does in the kernel
/// (its items still run, and its pools are shared, so no thread leaks with it). After
/// `destroyQueue()`, the last reference frees it.
///
/// - Note: All methods are thread-safe.
@safe
public final class Workqueue: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the `let`s are immutable; every `var` is only touched
    // with `WorkqueueCore.lock` held, except `inFlight`'s memory, which is too.

    /// The queue's name, as the kernel's reports and `/sys/devices/virtual/workqueue` show it.
    public let name: String
    /// The flags it was created with.
    public let flags: WorkqueueFlags
    /// Items that may be active at once (per CPU for a per-CPU queue).
    public let maxActive: Int
    /// Whether it runs one item at a time, in queueing order (`alloc_ordered_workqueue`).
    public let isOrdered: Bool
    /// Whether it is one of the system queues, which cannot be destroyed.
    public let isSystem: Bool
    /// Where it was created: its lock class for the lock validator (`(wq_completion)NAME`),
    /// unless it was created with a `lockClass`.
    public let file: StaticString
    /// See `file`.
    public let line: UInt
    /// Where reports made while its items run go, unless the item has its own log.
    let log: KernelLog?
    /// The lock validator's map of the queue (`(wq_completion)NAME`): held while each of its
    /// items runs, waited on by its flushes.
    let lockdepMap: LockdepMap

    /// The queue's share of each of its pools: one per CPU, or one (unbound). `pwqs` owns
    /// them; `pwqPointers` reaches them without retaining (SAFETY: written once in init,
    /// each entry kept alive by `pwqs` for the queue's life).
    private var pwqs: [PoolQueue] = []
    private let pwqPointers: UnsafeMutableBufferPointer<Unmanaged<PoolQueue>>

    // MARK: State (WorkqueueCore.lock)

    enum Lifecycle { case alive, destroying, destroyed }
    var lifecycle = Lifecycle.alive
    /// Callers in `drainQueue()` (the kernel's `nr_drainers`).
    var draining = 0
    /// Items pending on a list of this queue (active or inactive), not yet running.
    var queued = 0
    /// Items running now.
    var running = 0
    /// Delayed items whose timer will queue them here.
    var armedTimers = 0
    /// Items run to completion.
    var executed: UInt64 = 0
    /// Whether `cannot queue` was reported (the kernel's WARN_ONCE, here once per queue).
    var warnedCannotQueue = false
    /// Flush colours: each queued item takes the current colour; a flush advances it and
    /// waits until every older colour has drained (the kernel's `work_color` /
    /// `flush_color`, with 16 colours as there).
    var currentColor: UInt64 = 0
    let inFlight = ColorCounts()
    static let colorCount = 16
    static let colorMask: UInt64 = 15

    /// `WQ_MAX_ACTIVE` (6.x; 2048 in the newest headers): the most active items a queue
    /// may allow.
    public static let maxActiveLimit = 512
    /// `WQ_DFL_ACTIVE`: a queue's `maxActive` when it is created with 0.
    public static let defaultMaxActive = 256
    /// `WQ_NAME_LEN`: names are truncated to one byte less.
    public static let nameLength = 32

    // MARK: - Creation

    /// Allocates a workqueue (`alloc_workqueue(name, flags, maxActive)`). Its pools' workers
    /// are running when this returns.
    ///
    /// - Parameters:
    ///   - name: Its name; over 31 bytes it is truncated, with the kernel's warning.
    ///   - flags: `.unbound`, `.highPri`; the others are accepted and have no effect.
    ///   - maxActive: 0 for the default (256); otherwise clamped to 1...512, with the
    ///     kernel's warning.
    ///   - log: Where its items' reports go (each item's own `log` first), and its warnings.
    ///   - lockClass: The queue's lock class for the validator; by default its creation site,
    ///     so that queues a helper creates for different purposes share one class: give
    ///     each its own key there (the kernel's `alloc_workqueue_lockdep_map`).
    ///   - file: The creation site (its lock class); leave the default.
    ///   - line: See `file`.
    /// - Throws: `outOfResources` if a worker or the timer thread cannot start; nothing was
    ///   created (pools that did start stay, for later queues).
    public convenience init(
        name: String, flags: WorkqueueFlags = [], maxActive: Int = 0, log: KernelLog? = nil,
        lockClass: LockClassKey? = nil, file: StaticString = #fileID, line: UInt = #line
    ) throws(WorkqueueError) {
        try self.init(
            name: name, flags: flags, maxActive: maxActive, ordered: false, system: false, log: log,
            lockClass: lockClass, file: file, line: line)
    }

    /// Allocates an ordered workqueue (`alloc_ordered_workqueue`): unbound, one item active
    /// at a time, run in the order queued. `lockClass` as for `init`.
    public static func ordered(
        name: String, flags: WorkqueueFlags = [], log: KernelLog? = nil, lockClass: LockClassKey? = nil,
        file: StaticString = #fileID, line: UInt = #line
    ) throws(WorkqueueError) -> Workqueue {
        try Workqueue(
            name: name, flags: flags.union(.unbound), maxActive: 1, ordered: true, system: false, log: log,
            lockClass: lockClass, file: file, line: line)
    }

    init(
        name: String, flags: WorkqueueFlags, maxActive: Int, ordered: Bool, system: Bool, log: KernelLog?,
        lockClass: LockClassKey?, file: StaticString, line: UInt
    ) throws(WorkqueueError) {
        let warnLog = log ?? KernelLog.current
        var name = name
        if name.utf8.count >= Self.nameLength {
            name = String(decoding: name.utf8.prefix(Self.nameLength - 1), as: UTF8.self)
            warnLog.printk("workqueue: name exceeds WQ_NAME_LEN. Truncating to: \(name)")
        }
        var active = maxActive == 0 ? Self.defaultMaxActive : maxActive
        if !(1...Self.maxActiveLimit).contains(active) {
            warnLog.printk("workqueue: max_active \(maxActive) requested for \(name) is out of range, clamping between 1 and \(Self.maxActiveLimit)")
            active = min(max(active, 1), Self.maxActiveLimit)
        }
        self.name = name
        self.flags = ordered ? flags.union(.unbound) : flags
        self.maxActive = ordered ? 1 : active
        isOrdered = ordered
        isSystem = system
        self.file = file
        self.line = line
        self.log = log
        lockdepMap = LockdepMap(
            kind: "(wq_completion)", key: lockClass, label: "(wq_completion)\(name)", type: .pseudo, file: file, line: line)
        let pools = try WorkqueueCore.shared.pools(unbound: self.flags.contains(.unbound), highPri: flags.contains(.highPri))
        unsafe pwqPointers = .allocate(capacity: pools.count)
        var pwqs: [PoolQueue] = []
        pwqs.reserveCapacity(pools.count)
        for pool in pools { pwqs.append(PoolQueue(queue: self, pool: pool, maxActive: self.maxActive)) }
        for (i, pwq) in pwqs.enumerated() { unsafe pwqPointers[i] = Unmanaged.passUnretained(pwq) }
        self.pwqs = pwqs
        WorkqueueCore.shared.lock.withLock { WorkqueueCore.shared.queues.append(self) }
    }

    deinit {
        unsafe pwqPointers.deallocate()
    }

    /// A system queue. Its pools start here, the first time it is used; if they cannot, the
    /// process stops, as the kernel's boot does (`BUG_ON(!system_wq)`).
    private static func makeSystem(_ name: String, _ flags: WorkqueueFlags, maxActive: Int = 0) -> Workqueue {
        do throws(WorkqueueError) {
            return try Workqueue(
                name: name, flags: flags, maxActive: maxActive, ordered: false, system: true, log: nil,
                lockClass: LockClassKey("(wq_completion)\(name)"), file: #fileID, line: #line)
        } catch {
            fatalError("workqueue: failed to create system workqueue \(name): \(error)")
        }
    }

    // MARK: - The system queues

    /// `system_wq`, named `events`: per-CPU. Its pools start the first time any system
    /// queue is touched: touch it in process context (a probe) before a handler queues on
    /// it (`Device.addWork` does).
    public static let system = makeSystem("events", [])
    /// `system_highpri_wq`, named `events_highpri`: per-CPU, high-priority pools.
    public static let systemHighPri = makeSystem("events_highpri", .highPri)
    /// `system_unbound_wq`, named `events_unbound`: unbound, up to 512 active.
    public static let systemUnbound = makeSystem("events_unbound", .unbound, maxActive: maxActiveLimit)
    /// `system_percpu_wq` (6.17+): here an alias of `system`. Upstream it is a separate
    /// queue allocated with the same name, `events` (commit 128ea9f6ccfb), so a flush of one
    /// does not wait for the other's items; the issue asks for an alias.
    public static var systemPerCPU: Workqueue { system }
    /// `system_dfl_wq` (6.17+): here an alias of `systemUnbound`. Upstream it is a separate
    /// queue allocated with the same name, `events_unbound`.
    public static var systemDfl: Workqueue { systemUnbound }

    // MARK: - Configuration and state of the subsystem

    /// Sets up the pools before any starts (before the first queue is created): `cpus`
    /// emulated CPUs (per-CPU pools), their workers pinned to `hostCPUs[cpu % count]` if
    /// given, `workersPerPool` workers in each per-CPU pool and `unboundWorkers` in each
    /// unbound pool. Defaults: one CPU per host CPU, 2 and 4 workers, no pinning.
    ///
    /// - Throws: `alreadyStarted` once a pool has started; `invalidArgument`.
    public static func configure(
        cpus: Int, hostCPUs: [Int]? = nil, workersPerPool: Int = 2, unboundWorkers: Int = 4
    ) throws(WorkqueueError) {
        try WorkqueueCore.shared.configure(cpus: cpus, hostCPUs: hostCPUs, perCPUWorkers: workersPerPool, unboundWorkers: unboundWorkers)
    }

    /// The emulated CPUs of the per-CPU pools.
    public static var cpuCount: Int { WorkqueueCore.shared.cpus }

    /// The work item the calling kworker is running (`current_work()`), or nil on any other
    /// thread.
    public static var currentWork: Work? { Worker.current?.current }

    /// The queue of the work item the calling kworker is running, or nil on any other thread.
    public static var current: Workqueue? { Worker.current?.currentPWQ?.queue }

    /// The live queues' figures, oldest first (system queues once touched, allocated ones
    /// until destroyed).
    public static var all: [Statistics] {
        let core = WorkqueueCore.shared
        return core.lock.withLock { core.queues.map { $0.statisticsLocked } }
    }

    // MARK: - Figures

    /// What a queue has done and holds.
    public struct Statistics: Sendable, Hashable, CustomStringConvertible {
        /// The queue's name.
        public let name: String
        /// Items run to completion.
        public let executed: UInt64
        /// Items queued and not yet running (the backlog), inactive ones included.
        public let pending: Int
        /// Items running now.
        public let running: Int
        /// Delayed items whose timer will queue them here.
        public let armedTimers: Int
        /// Whether a `drainQueue()` (or `destroyQueue()`) is in progress.
        public let isDraining: Bool
        /// The queue's `maxActive`.
        public let maxActive: Int
        /// Whether the queue is ordered.
        public let isOrdered: Bool
        /// Whether the queue is unbound (its items run on the unbound pool).
        public let isUnbound: Bool

        /// One line: the queue's name and counts.
        public var description: String {
            "workqueue \(name): executed \(executed), pending \(pending), running \(running), timers \(armedTimers)"
        }
    }

    /// The queue's figures now.
    public var statistics: Statistics { WorkqueueCore.shared.lock.withLock { statisticsLocked } }

    var statisticsLocked: Statistics {
        Statistics(
            name: name, executed: executed, pending: queued, running: running, armedTimers: armedTimers,
            isDraining: draining > 0 || lifecycle == .destroying, maxActive: maxActive, isOrdered: isOrdered, isUnbound: flags.contains(.unbound))
    }

    // MARK: - Pools

    /// The pool share for `cpu` (-1: the calling thread's CPU), nil for a CPU the queue does
    /// not have.
    @inline(__always)
    func pwq(forCPU cpu: Int) -> PoolQueue? {
        guard let index = resolvedCPU(cpu) else { return nil }
        return pwq(cpu: index)
    }

    /// `pwq(forCPU:)` unretained, for the queueing path.
    @inline(__always)
    func pwqRef(forCPU cpu: Int) -> Unmanaged<PoolQueue>? {
        guard let index = resolvedCPU(cpu) else { return nil }
        // SAFETY: see `pwqPointers`.
        return unsafe pwqPointers[index]
    }

    /// The CPUs (pool shares) the queue has: the CPU count, or 1 for an unbound queue.
    var pwqCount: Int { unsafe pwqPointers.count }

    /// The pool share a resolved CPU index names (for a timer's target).
    @inline(__always)
    func pwq(cpu: Int) -> PoolQueue {
        // SAFETY: `cpu` is a resolved index (< count); see `pwqPointers`.
        unsafe pwqPointers[cpu].takeUnretainedValue()
    }

    /// The CPU index `cpu` resolves to on this queue (-1: the calling thread's).
    @inline(__always)
    func resolvedCPU(_ cpu: Int) -> Int? {
        let count = pwqCount
        if count == 1 { return 0 }
        let index = cpu < 0 ? Self.localCPU % count : cpu
        return index < count ? index : nil
    }

    /// The calling thread's CPU: the emulated CPU of a dispatcher or a per-CPU worker, else
    /// the host CPU it runs on (`WORK_CPU_UNBOUND` picks the local CPU).
    static var localCPU: Int {
        let cpu = ThreadState.cpu
        if cpu >= 0 { return Int(cpu) }
        return max(0, Int(CSupport_current_host_cpu()))
    }

    /// Whether the caller is a work item running on this queue (`is_chained_work`): the only
    /// one that may queue on it while it drains.
    func isChainedLocked() -> Bool {
        guard let worker = Worker.current, let pwq = worker.currentPWQ else { return false }
        return pwq.queue === self
    }

    /// Whether the queue takes an item from the caller now: always while it is alive and not
    /// draining; while it drains or is being destroyed, only from its own items (chained
    /// work), and never a timer armed while it is being destroyed; never once destroyed.
    /// A timer firing is never chained. Lock held.
    @inline(__always)
    func acceptsLocked(arming: Bool = false) -> Bool {
        if _fastPath(lifecycle == .alive && draining == 0) { return true }
        if lifecycle == .destroyed || (arming && lifecycle == .destroying) { return false }
        return isChainedLocked()
    }
}

/// A queue's in-flight counts per flush colour (16), in memory of their own.
@safe
final class ColorCounts: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): 16 counters allocated with the object and freed with it,
    // indexed modulo 16; only touched with `WorkqueueCore.lock` held.
    private let counts: UnsafeMutablePointer<Int>

    init() {
        unsafe counts = .allocate(capacity: Workqueue.colorCount)
        unsafe counts.initialize(repeating: 0, count: Workqueue.colorCount)
    }

    deinit { unsafe counts.deallocate() }

    /// Items in flight with colour `color`.
    subscript(color: UInt64) -> Int {
        get { unsafe counts[Int(color & Workqueue.colorMask)] }
        set { unsafe counts[Int(color & Workqueue.colorMask)] = newValue }
    }
}
