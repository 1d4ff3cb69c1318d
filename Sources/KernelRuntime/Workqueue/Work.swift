import Synchronization

/// A work item's queue state: the kernel's `struct work_struct`, rust's `Work<T>`.
///
/// Store one in the class that does the work, and conform that class to `WorkItem`:
///
/// ```swift
/// final class RxWork: WorkItem {
///     let work = Work(name: "rx")
///     func run() { … }                        // process context, on a kworker
/// }
/// Workqueue.system.enqueue(rx)                // from anywhere, hard-IRQ handlers included
/// ```
///
/// Queues link items through their `Work` (intrusively), so queueing allocates nothing and
/// takes exactly one reference to the owner (`Unmanaged.passRetained`); the item's run, or
/// its cancel, gives that reference back. A queued item therefore keeps its owner alive,
/// and an owner's `deinit` never runs while its work is pending or running: cancel in a
/// teardown step (`Device.addWork` does, at unbind), never in a `deinit`.
///
/// A `Work` is created with its owner and stored in it. Swift cannot lay an object with
/// reference identity inside another object's storage (short of the experimental raw-layout
/// attribute), so it is a small object of its own, allocated when the owner is: every queue
/// operation reaches it through the owner and allocates nothing. Each `Work` belongs to one
/// owner; queueing it through two owners is a fatal error.
///
/// The item-level calls (`cancelWork()`, `flushWork()`, `disableWorkSync()`, …) are on the
/// owner (`WorkItem`); the queue calls on `Workqueue`.
///
/// - Note: All methods are thread-safe.
@safe
public class Work: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): every `var` below is only touched with
    // `WorkqueueCore.lock` held (the worker reads its running item's `item` after taking it
    // off its list under the lock, and the +1 it holds keeps the owner alive).

    /// The name given at creation (`new_work!("name")`), used in reports.
    public let name: String?
    /// Where reports made while the item runs go (the log in scope on the worker); the
    /// queue's log, or `KernelLog.standard`, if nil.
    public let log: KernelLog?
    /// Where the `Work` was created: its lock class for the lock validator (a work item's
    /// lockdep map is keyed by its `INIT_WORK` site).
    public let file: StaticString
    /// See `file`.
    public let line: UInt
    /// Whether this is a `DelayedWork`.
    final let isDelayed: Bool
    /// The lock validator's map of every `Work` created at this one's site (its class, the
    /// kernel's `INIT_WORK` key, named after the first `Work` made there); the `Work` itself
    /// is the instance.
    package final let lockdepMap: LockdepMap

    // MARK: State, under WorkqueueCore.lock

    /// `WORK_STRUCT_PENDING`: queued on a list, or its timer armed.
    final var pending = false
    /// The disable depth (`disable_work` / `enable_work`); enqueues are refused above 0.
    final var disableCount: UInt16 = 0
    /// On a list that counts against its queue's `maxActive` (a pool's worklist, a worker's
    /// scheduled list), and not yet finished.
    final var active = false
    /// The pending instance's flush colour on its queue.
    final var color: UInt64 = 0
    /// The owner, by address: its identity, and the handle its queue references are given
    /// back through.
    final var owner: ItemReference?
    /// The flush colour of the running instance.
    final var runningColor: UInt64 = 0
    /// Instances queued so far; the pending one is number `queuedSeq`.
    final var queuedSeq: UInt64 = 0
    /// The running instance's number.
    final var runningSeq: UInt64 = 0
    /// Queue references waiting to be given back on a worker (taken back in atomic
    /// context).
    final var deferredReleases = 0

    // Unretained links, under the lock. SAFETY: each is stored only while its object is
    // alive and read only while that still holds: a listed item is pending (its queue
    // reference keeps its owner, and so this object, alive), pools and workers are never
    // freed, a queue outlives its pool shares, and `item` is read only while the queue holds
    // a reference to it (pending or running). The queueing path uses the `Unmanaged` forms
    // (no retain, no release); the others, the object forms.
    final var listRef: Unmanaged<WorkList>?
    final var nextRef: Unmanaged<Work>?
    final var prevRef: Unmanaged<Work>?
    final var pwqRef: Unmanaged<PoolQueue>?
    unowned(unsafe) private final var _item: (any WorkItem)?
    unowned(unsafe) private final var _runningOn: Worker?
    unowned(unsafe) private final var _releaseNext: Work?

    /// The list the item is on.
    final var list: WorkList? {
        get { unsafe listRef?.takeUnretainedValue() }
        set { unsafe listRef = newValue.map { unsafe Unmanaged.passUnretained($0) } }
    }
    /// The queue-on-a-pool the pending instance was queued to (the kernel's pwq).
    final var pwq: PoolQueue? {
        get { unsafe pwqRef?.takeUnretainedValue() }
        set { unsafe pwqRef = newValue.map { unsafe Unmanaged.passUnretained($0) } }
    }
    /// The owner, set at the first enqueue.
    final var item: (any WorkItem)? { get { unsafe _item } set { unsafe _item = newValue } }
    /// The worker running the item, if any.
    final var runningOn: Worker? { get { unsafe _runningOn } set { unsafe _runningOn = newValue } }
    /// The link of the list of deferred releases.
    final var releaseNext: Work? { get { unsafe _releaseNext } set { unsafe _releaseNext = newValue } }

    /// This object as the `DelayedWork` it is; only when `isDelayed`.
    final var asDelayed: DelayedWork {
        // SAFETY: `isDelayed` is set only by `DelayedWork`'s initializer.
        unsafe unsafeDowncast(self, to: DelayedWork.self)
    }

    /// Sees every enqueue attempt of this item before it is decided (DeviceModel's check of
    /// managed work): read with one load, and called unretained. Set once, never replaced, so
    /// the pointer stays valid while the `Work` lives (`observerOwner` holds its object).
    final let observerPointer = unsafe Atomic<UnsafeMutableRawPointer?>(nil)
    private final var observerOwner: WorkEnqueueObserverBox?

    /// A work item's state, to be stored in its owner (`INIT_WORK`, `new_work!`).
    ///
    /// - Parameters:
    ///   - name: Names the item in reports (`(work_completion)(&name)`); the owner's type
    ///     if nil.
    ///   - log: Where reports made while it runs go.
    ///   - file: The creation site (its lock class); leave the default.
    ///   - line: See `file`.
    public init(name: String? = nil, log: KernelLog? = nil, file: StaticString = #fileID, line: UInt = #line) {
        self.name = name
        self.log = log
        self.file = file
        self.line = line
        isDelayed = false
        lockdepMap = Self.map(name: name, file: file, line: line)
    }

    /// A `Work` whose class is named `label` whatever its name (items made at one site with
    /// many names: `spawn`'s closures).
    init(name: String, lockdepLabel label: String, file: StaticString = #fileID, line: UInt = #line) {
        self.name = name
        log = nil
        self.file = file
        self.line = line
        isDelayed = false
        lockdepMap = LockdepMap.shared(kind: "(work_completion)", type: .pseudo, file: file, line: line, label: label)
    }

    init(delayedName name: String?, log: KernelLog?, file: StaticString, line: UInt) {
        self.name = name
        self.log = log
        self.file = file
        self.line = line
        isDelayed = true
        lockdepMap = Self.map(name: name, file: file, line: line)
    }

    /// The site's map, named `(work_completion)(&name)` after the first `Work` made there.
    private static func map(name: String?, file: StaticString, line: UInt) -> LockdepMap {
        LockdepMap.shared(
            kind: "(work_completion)", type: .pseudo, file: file, line: line, label: "(work_completion)(&\(name ?? "work"))")
    }

    /// This `Work` as the validator's lock instance.
    @inline(__always)
    final var lockdepInstance: UnsafeRawPointer { unsafe UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()) }

    // MARK: - Public state

    /// Whether the item is pending: queued, or its timer armed (`work_pending`). Racy by
    /// nature: for diagnostics and tests.
    public final var isPending: Bool { WorkqueueCore.shared.lock.withLock { pending } }

    /// Whether a worker is running the item now (`work_busy`'s RUNNING). Racy by nature.
    public final var isRunning: Bool { WorkqueueCore.shared.lock.withLock { runningOn != nil } }

    /// Whether enqueues are refused now (`disableWork` without its `enableWork`).
    public final var isDisabled: Bool { WorkqueueCore.shared.lock.withLock { disableCount > 0 } }

    // MARK: - Names for reports

    /// The work function as the kernel's `%ps` prints it: `Owner.run`.
    package final var functionName: String {
        let owner = WorkqueueCore.shared.lock.withLock { item.map { String(describing: type(of: $0)) } }
        if let owner { return "\(owner).run" }
        return name ?? "work at \(file):\(line)"
    }

    /// The item's lockdep map name, `(work_completion)(&name)`.
    final var lockdepName: String {
        if let name { return "(work_completion)(&\(name))" }
        let owner = WorkqueueCore.shared.lock.withLock { item.map { String(describing: type(of: $0)) } }
        return "(work_completion)(&\(owner.map { "\($0)->work" } ?? "work at \(file):\(line)"))"
    }

    // MARK: - The enqueue observer

    /// The item's observer, made with `make` the first time (never replaced).
    package final func installObserver<O: WorkEnqueueObserver>(_ make: () -> O) -> O {
        let core = WorkqueueCore.shared
        core.lock.lock()
        if let existing = observerOwner {
            core.lock.unlock()
            // One observer type per purpose (DeviceModel's): a checked cast on a slow path.
            return existing.observer as! O
        }
        let made = make()
        let box = WorkEnqueueObserverBox(made)
        observerOwner = box
        unsafe observerPointer.store(Unmanaged.passUnretained(box).toOpaque(), ordering: .releasing)
        core.lock.unlock()
        return made
    }

    /// Calls the observer, if any: one load when there is none.
    @inline(__always)
    final func notifyObserver() {
        guard let raw = unsafe observerPointer.load(ordering: .acquiring) else { return }
        // SAFETY: set once from `observerOwner`, which this `Work` keeps for its whole life.
        unsafe Unmanaged<WorkEnqueueObserverBox>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.observer.willEnqueue(self) }
    }
}
