/// The library's reaper thread: does, later and in process context, the sleeping part of a
/// teardown that was reached where sleeping is not allowed.
///
/// A `deinit` cannot throw. When the last reference to a `Devres` or an IRQ `Registration`
/// is dropped inside a read-side section or a hard-IRQ handler, the teardown reports the
/// sleeping call and hands its waiting part here (as the kernel would queue work on a
/// workqueue) instead of sleeping in atomic context. Work runs one item at a time, in the
/// order it was scheduled.
public final class Reaper: Sendable {
    /// The process-wide reaper; its thread starts on first use.
    public static let shared = Reaper()

    private struct State {
        var queue: [(String, @Sendable () -> Void)] = []
        var running = false
        var scheduled = 0
        var completed = 0
        var thread: KThread?
    }

    private let wait = ConditionLock()
    private let state = LockedValue(State())
    /// The validator's pseudo-lock, held while work runs and noted by `flush` (the kernel's
    /// workqueue map): a flush under a lock that reaper work takes is reported.
    let lockdepMap = LockdepMap(key: LockClassKey("(wq_completion)irqemu-reaper"))

    private init() {}

    /// Queues `work` (described by `what`) to run on the reaper thread. Never sleeps:
    /// callable from any context.
    ///
    /// If the reaper's thread cannot be started (the process is out of threads), the work
    /// stays queued and the next `schedule` or `flush` tries again.
    public func schedule(_ what: String, _ work: @escaping @Sendable () -> Void) {
        wait.withLock {
            state.withLock { state in
                state.queue.append((what, work))
                state.scheduled += 1
            }
        }
        startIfNeeded()
        wait.wakeAll()
    }

    private func startIfNeeded() {
        wait.withLock {
            state.withLock { state in
                guard state.thread == nil else { return }
                state.thread = try? KThread(name: "irqemu-reaper") { [self] in self.loop() }
            }
        }
    }

    /// Work queued and not yet finished.
    public var pending: Int { wait.withLock { state.withLock { $0.queue.count + ($0.running ? 1 : 0) } } }

    /// Work finished since the process started.
    public var completed: Int { wait.withLock { state.withLock { $0.completed } } }

    /// Waits until everything queued before the call has run (`flush_workqueue`), up to
    /// `timeout` (see `Deadline` for the policy).
    ///
    /// - Throws: `atomicContext` in atomic context; `wouldDeadlock` from work running on the
    ///   reaper (that work is part of what it would wait for; reported); `timedOut`.
    @available(*, noasync, message: "blocks the thread")
    public func flush(timeout: Duration? = .seconds(10), file: StaticString = #fileID, line: UInt = #line) throws(WaitError) {
        do {
            try AtomicContext.mightSleep("Reaper.flush(timeout:)", file: file, line: line)
        } catch { throw .atomicContext(error) }
        if wait.withLock({ state.withLock { $0.thread?.isCurrent ?? false } }) {
            AtomicContext.warn(
                .warning, ["WARNING: Reaper.flush(timeout:) from work on the reaper would wait for itself"],
                function: "Reaper.flush(timeout:)", log: nil, file: "\(file)", line: line)
            throw .wouldDeadlock(reason: "Reaper.flush(timeout:) from work running on the reaper")
        }
        Lockdep.noteWait(for: lockdepMap, file: file, line: line)
        startIfNeeded()
        // Work runs in order, so what was queued before now is done once `completed`
        // reaches the count scheduled now; later work is not waited for.
        let ticket = wait.withLock { state.withLock { $0.scheduled } }
        let done = wait.wait(until: .after(timeout)) { state.withLock { $0.completed >= ticket } }
        if !done { throw .timedOut(operation: "Reaper.flush", after: timeout ?? .zero) }
    }

    private func loop() {
        while true {
            var item: (String, @Sendable () -> Void)?
            wait.withLock {
                _ = wait.waitLocked { state.withLock { !$0.queue.isEmpty } }
                item = state.withLock { state in
                    state.running = true
                    return state.queue.removeFirst()
                }
            }
            if let item { Lockdep.withHeld(lockdepMap) { item.1() } }
            wait.withLock {
                state.withLock { state in
                    state.running = false
                    state.completed += 1
                }
            }
            wait.wakeAll()
        }
    }
}
