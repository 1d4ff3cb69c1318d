/// A one-shot or counting event one thread waits for and another signals: the kernel's
/// `struct completion`.
///
/// `complete()` lets one waiter through (or the next one to come), `completeAll()` every
/// waiter, now and later, until `reinit()`. Waiting is a sleeping call, checked.
public final class Completion: Sendable {
    private static let all = UInt.max
    private let state = ConditionLock()
    private let done = LockedValue<UInt>(0)

    /// A completion not yet done (`init_completion`).
    public init() {}

    /// Lets one waiter through (`complete`). Never sleeps: callable from any context.
    public func complete() {
        state.withLock { done.withLock { if $0 != Self.all { $0 += 1 } } }
        state.wakeAll()
    }

    /// Lets every waiter through, now and until `reinit()` (`complete_all`). Never sleeps.
    public func completeAll() {
        state.withLock { done.withLock { $0 = Self.all } }
        state.wakeAll()
    }

    /// Makes the completion not done again (`reinit_completion`).
    public func reinit() { state.withLock { done.withLock { $0 = 0 } } }

    /// Whether a wait would return at once (`completion_done`).
    public var isDone: Bool { state.withLock { done.withLock { $0 > 0 } } }

    /// Waits until completed (`wait_for_completion`), or until `timeout` has passed
    /// (`wait_for_completion_timeout`; no limit if nil).
    ///
    /// - Throws: `atomicContext` in atomic context, `timedOut`; nothing was consumed.
    @available(*, noasync, message: "blocks the thread")
    public func wait(timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line) throws(WaitError) {
        do {
            try AtomicContext.mightSleep("Completion.wait(timeout:)", file: file, line: line)
        } catch { throw .atomicContext(error) }
        let ok = state.withLock {
            let ok = state.waitLocked(until: .after(timeout)) { done.withLock { $0 > 0 } }
            if ok { done.withLock { if $0 != Self.all { $0 -= 1 } } }
            return ok
        }
        if !ok { throw .timedOut(operation: "Completion.wait", after: timeout ?? .zero) }
    }
}
