import DeviceModel
import Glibc
import KernelRuntime
import RCU
import Synchronization

/// One interrupt line (the kernel's `struct irq_desc`): its source, its actions, and the
/// flow state the dispatcher and the request/free/enable/disable calls share.
///
/// - Invariant: Every `var` is read and written with `lock` held (the kernel's
///   `desc->lock`, a raw spinlock: never held across a handler or a sleep). The action
///   list is also readable without the lock, under RCU, by the dispatcher.
@safe
final class IRQDescriptor: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): see Invariant.
    let irq: IRQNumber
    let source: any InterruptSource
    /// The controller, for misrouted-interrupt polling. Unretained: the controller owns its
    /// descriptors and outlives every interrupt of theirs.
    unowned(unsafe) let controller: ControllerCore?
    /// The controller's misrouted-interrupt recovery.
    let irqFixup: IRQFixup
    /// Every CPU of the controller; the line is routed to `dispatchers[cpu]`.
    let dispatchers: [Dispatcher]
    /// The CPU the line is routed to (its affinity). Changed only by `setAffinity`, with
    /// `lock` held; read from any context.
    let cpu: Atomic<Int>
    /// The line's CPU.
    var dispatcher: Dispatcher { dispatchers[cpu.load(ordering: .acquiring)] }
    let log: KernelLog
    /// `desc->lock`, and the condition `synchronize_irq` waits on (`wait_for_threads`).
    let lock = ConditionLock()
    /// Serializes request and free on the line (`desc->request_mutex`); taken only in
    /// process context, never with `lock` held. A free holds it while it waits for the
    /// line's handlers and threads (`freeWaitsForThreads`), except a deferred free, which
    /// stops the action's thread after releasing it.
    let requestMutex = Lock()
    /// Threads blocked taking `requestMutex` (the mutex's wait list, for diagnostics).
    let requestMutexWaiters = Atomic<Int>(0)
    /// `requestMutex` for the lock validator: one class for every line's.
    let requestMutexMap = LockdepMap(key: LockClassKey("&desc->request_mutex"), type: .mutex)

    /// The actions, in registration order. Replaced (never mutated) under `lock`.
    let actions = RCUPointer<ActionList>(ActionList.empty)

    // Line configuration.
    var trigger: IRQFlags
    var isLevel: Bool { trigger.isLevel }
    var flowName: String { isLevel ? "level" : "edge" }
    /// Whether a request ever set the line up (else `enable_irq before setup`).
    var everSetUp = false
    /// The first action's ONESHOT (`IRQS_ONESHOT`).
    var oneShotLine = false

    // Flow state (`istate` and `irq_data` state bits).
    var depth = 1  // shut down until the first request
    var disabled: Bool { depth > 0 }
    var pending = false
    var masked = true
    /// No action (never requested, or freed): the line is shut down, and its source stays
    /// watched so that whatever arrives is drained and counted as spurious, never kept for
    /// the next requester.
    var isShutDown = true
    /// Whether the source's descriptor is armed in the CPU's epoll: `watchesSource`.
    private var armed = false
    /// `armed`, for a move to another CPU. Lock held.
    var isArmed: Bool { armed }
    var inProgress = false
    var spuriousDisabled = false
    /// No spurious accounting: the first action is NO_DEBUG and PERCPU (`IRQ_NO_DEBUG`).
    var noDebug = false
    /// Under `.irqpoll`, whether the first action has IRQPOLL. Set at the first request.
    var firstActionPolls = false
    /// Disabled by `suspendDeviceIRQs` (`IRQS_SUSPENDED`).
    var suspended = false
    /// Its handlers are being run by a misrouted-interrupt poll (`IRQS_POLL_INPROGRESS`).
    var pollInProgress = false
    var threadsOneShot: UInt64 = 0
    /// ONESHOT bits of actions unlinked whose free has not stopped their thread yet: not
    /// given to a new action, whose pending thread that thread's last run would clear.
    var retiringThreadMask: UInt64 = 0
    /// Frees waiting, with the request mutex held, for the line's threads.
    var freeWaitsForThreads = 0
    var threadsActive = 0
    var syncWaiters = 0

    // Spurious detection (spurious.c).
    var irqCount = 0
    var irqsUnhandled = 0
    var lastUnhandled: UInt64 = 0
    var threadsHandled: UInt32 = 0
    var threadsHandledLast: UInt32 = 0
    static let spuriousDeferred: UInt32 = 0x8000_0000

    // Statistics.
    let cpuCount: Int
    /// Interrupts handled per CPU (`kstat_irqs`), written under `lock`. A buffer the
    /// descriptor owns rather than an array: counting costs no uniqueness or exclusivity check.
    let perCPU: UnsafeMutableBufferPointer<UInt64>
    var raised: UInt64 = 0
    var spurious: UInt64 = 0
    var unhandledTotal: UInt64 = 0

    // Software raises (`InterruptLine.trigger()`) and replays, set from any thread and
    // consumed by the dispatcher.
    let softPending = Atomic<Bool>(false)
    /// `InterruptLine.trigger()` calls, counted in `raised` (they are raises of the line).
    let triggered = Atomic<UInt64>(0)
    let replayPending = Atomic<Bool>(false)

    /// Actions unlinked by a `free_irq` that could not wait (atomic context); the reaper
    /// completes their free.
    var detached: [IRQAction] = []

    /// Nanoseconds after which an unhandled interrupt restarts the unhandled count (HZ/10).
    let unhandledResetNanoseconds: UInt64

    init(
        irq: IRQNumber, source: any InterruptSource, controller: ControllerCore?, irqFixup: IRQFixup,
        dispatchers: [Dispatcher], cpu: Int, log: KernelLog,
        trigger: IRQFlags, cpuCount: Int, unhandledResetNanoseconds: UInt64
    ) {
        self.irq = irq
        self.source = source
        unsafe self.controller = controller
        self.irqFixup = irqFixup
        self.dispatchers = dispatchers
        self.cpu = Atomic(cpu)
        self.log = log
        self.trigger = trigger
        self.cpuCount = cpuCount
        unsafe perCPU = .allocate(capacity: cpuCount)
        unsafe perCPU.initialize(repeating: 0)
        self.unhandledResetNanoseconds = unhandledResetNanoseconds
    }

    deinit { unsafe perCPU.deallocate() }

    /// The value the dispatcher's epoll carries for this line: the descriptor's address.
    /// The CPU's line list keeps the descriptor alive until its dispatcher thread is joined.
    var epollTag: UInt64 { UInt64(UInt(bitPattern: unsafe Unmanaged.passUnretained(self).toOpaque())) }

    var currentActions: [IRQAction] { actions.read { $0?.actions ?? [] } }

    // MARK: - Mask and unmask (the irq_chip)

    /// Whether raises are taken from the source now: unmasked, or shut down (to count them
    /// as spurious). Lock held.
    var watchesSource: Bool { !masked || isShutDown }

    /// Masks the line at the source (`mask_irq`). Lock held.
    func mask() {
        guard !masked else { return }
        masked = true
        updateArming()
    }

    /// Unmasks the line (`unmask_irq`); a level source then re-raises if still asserted,
    /// and a software raise latched while masked is delivered. Lock held.
    func unmask() {
        guard masked else { return }
        masked = false
        updateArming()
        if isLevel {
            source.levelInput?.lineUnmasked()
        } else if softPending.load(ordering: .acquiring) {
            dispatcher.kickSoftware()
        }
    }

    /// Arms or disarms the source's descriptor to match `watchesSource` (at most one
    /// `epoll_ctl`). Lock held.
    func updateArming() {
        guard let fd = source.fileDescriptor, watchesSource != armed else { return }
        armed = watchesSource
        dispatcher.epoll.modify(fd, data: epollTag, armed: armed)
    }

    /// Marks a software raise and kicks the line's CPU. Any thread, any context.
    func softwareRaise() {
        triggered.add(1, ordering: .relaxed)
        softPending.store(true, ordering: .sequentiallyConsistent)
        dispatcher.kickSoftware()
    }

    /// Replays one coalesced edge, asynchronously, on the line's CPU (`check_irq_resend`).
    func scheduleReplay() {
        replayPending.store(true, ordering: .sequentiallyConsistent)
        dispatcher.kickSoftware()
    }

    // MARK: - Threads

    /// `__irq_wake_thread`: called from the primary handler's flow, hard-IRQ context.
    func wakeThread(of action: IRQAction) {
        guard let thread = action.thread, !thread.stopFlag.load(ordering: .relaxed) else { return }
        guard thread.setRunFlag() else { return }  // already pending: coalesced
        lock.withLock {
            // An unlinked action's last run holds the line masked only while it is still a
            // ONESHOT line: a request since may have set it up for an action that is not,
            // and then nothing would clear the bit.
            if oneShotLine || retiringThreadMask & action.threadMask == 0 { threadsOneShot |= action.threadMask }
            threadsActive += 1
        }
        thread.wake()
    }

    /// The end of a threaded run: `irq_finalize_oneshot`, the threaded spurious count, and
    /// `wake_threads_waitq`. Process context, on the IRQ thread.
    func threadFinished(_ thread: IRQThread, result: IRQReturn) {
        var wake = false
        while true {
            lock.lock()
            if inProgress && oneShotLine {
                // The primary handler is running on another CPU: let it finish first.
                lock.unlock()
                sched_yield_()
                continue
            }
            break
        }
        if oneShotLine && !thread.runFlag.load(ordering: .acquiring) {
            threadsOneShot &= ~thread.action.threadMask
            if threadsOneShot == 0 && !disabled && masked { unmask() }
        }
        if result == .handled { threadsHandled &+= 1 }
        threadsActive -= 1
        wake = threadsActive == 0 && syncWaiters > 0
        lock.unlock()
        if wake { lock.wakeAll() }
    }

    // MARK: - Waiting for handlers

    /// `synchronize_irq`'s wait: until no primary handler of the line runs and no thread of
    /// the line is active. Lock not held on entry.
    func waitForHandlers(until deadline: Deadline = .never) -> Bool {
        waitAsSyncWaiter(until: deadline) { !inProgress && threadsActive == 0 }
    }

    /// `synchronize_hardirq`'s wait: until no primary handler of the line runs (threads
    /// may still be active). Lock not held on entry.
    @discardableResult
    func waitForPrimaryHandlers(until deadline: Deadline = .never) -> Bool {
        waitAsSyncWaiter(until: deadline) { !inProgress }
    }

    /// Waits for `idle` counted in `syncWaiters`, which the flow and the threads check
    /// before waking the queue.
    private func waitAsSyncWaiter(until deadline: Deadline, _ idle: () -> Bool) -> Bool {
        lock.withLock {
            syncWaiters += 1
            defer { syncWaiters -= 1 }
            return lock.waitLocked(until: deadline, idle)
        }
    }

    // MARK: - For the lock validator

    /// Takes the request mutex, validated.
    func lockRequestMutex(file: StaticString = #fileID, line: UInt = #line) {
        Lockdep.acquire(requestMutexMap, function: "mutex_lock", file: file, line: line, log: log)
        if requestMutex.tryLock() { return }
        requestMutexWaiters.add(1, ordering: .sequentiallyConsistent)
        requestMutex.lock()
        requestMutexWaiters.subtract(1, ordering: .sequentiallyConsistent)
    }

    func unlockRequestMutex() {
        Lockdep.release(requestMutexMap)
        requestMutex.unlock()
    }

    func withRequestMutex<R, E: Error>(file: StaticString = #fileID, line: UInt = #line, _ body: () throws(E) -> R) throws(E) -> R {
        lockRequestMutex(file: file, line: line)
        defer { unlockRequestMutex() }
        return try body()
    }

    /// A wait for the line's threaded handlers, as acquisitions of their pseudo-locks:
    /// locks held here are ordered before whatever the threaded handlers take. Reported at
    /// the caller's site.
    func noteThreadWaits(function: StaticString, file: String, line: UInt) {
        guard Lockdep.isActive else { return }
        for action in currentActions {
            if let map = action.threadMap { Lockdep.noteWait(for: map, function: function, file: file, line: line, log: log) }
        }
    }

    /// Whether the calling thread is one of this line's IRQ threads.
    var calledFromOwnThread: Bool {
        guard let current = IRQThread.current else { return false }
        return current.descriptor === self
    }
}

@inline(__always)
func sched_yield_() {
    _ = Glibc.sched_yield()
}
