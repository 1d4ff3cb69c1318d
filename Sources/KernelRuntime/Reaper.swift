/// The library's reaper thread: does, later and in process context, the sleeping part of a
/// teardown that was reached where sleeping is not allowed.
///
/// A `deinit` cannot throw. When the last reference to a `Devres` or an IRQ `Registration`
/// is dropped inside a read-side section or a hard-IRQ handler, the teardown reports the
/// sleeping call and hands its waiting part here (as the kernel would queue work on a
/// workqueue) instead of sleeping in atomic context.
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

    private let wait = WaitQueue()
    private let state = LockedValue(State())

    private init() {}

    /// Queues `work` (described by `what`) to run on the reaper thread.
    public func schedule(_ what: String, _ work: @escaping @Sendable () -> Void) {
        wait.lock.withLock {
            state.withLock { state in
                state.queue.append((what, work))
                state.scheduled += 1
                if state.thread == nil {
                    state.thread = KThread(name: "irqemu-reaper") { [self] in self.loop() }
                }
            }
        }
        wait.wakeAll()
    }

    /// Work queued and not yet finished.
    public var pending: Int { wait.lock.withLock { state.withLock { $0.queue.count + ($0.running ? 1 : 0) } } }

    /// Work finished since the process started.
    public var completed: Int { wait.lock.withLock { state.withLock { $0.completed } } }

    /// Waits until everything queued before the call has run (`flush_workqueue`), or
    /// `timeout` seconds. Returns whether the queue drained.
    ///
    /// From work running on the reaper it returns false at once, with a warning: that work
    /// is part of what it would wait for.
    @available(*, noasync, message: "blocks the thread")
    public func flush(timeout: Double = 10, file: StaticString = #fileID, line: UInt = #line) throws(AtomicContextViolation) -> Bool {
        try AtomicContext.mightSleep("Reaper.flush(timeout:)", file: file, line: line)
        if wait.lock.withLock({ state.withLock { $0.thread?.isCurrent ?? false } }) {
            AtomicContext.warn(
                .warning, ["WARNING: Reaper.flush(timeout:) from work on the reaper would wait for itself"],
                function: "Reaper.flush(timeout:)", log: nil, file: "\(file)", line: line)
            return false
        }
        // Work runs in order, so what was queued before now is done once `completed`
        // reaches the count scheduled now; later work is not waited for.
        let ticket = wait.lock.withLock { state.withLock { $0.scheduled } }
        return wait.wait(until: .after(seconds: timeout)) {
            state.withLock { $0.completed >= ticket }
        }
    }

    private func loop() {
        while true {
            var item: (String, @Sendable () -> Void)?
            wait.lock.withLock {
                _ = wait.waitLocked { state.withLock { !$0.queue.isEmpty } }
                item = state.withLock { state in
                    state.running = true
                    return state.queue.removeFirst()
                }
            }
            item?.1()
            wait.lock.withLock {
                state.withLock { state in
                    state.running = false
                    state.completed += 1
                }
            }
            wait.wakeAll()
        }
    }
}
