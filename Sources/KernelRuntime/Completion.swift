/// A one-shot or counting event one thread waits for and another signals: the kernel's
/// `struct completion`.
///
/// `complete()` lets one waiter through (or the next one to come), `completeAll()` every
/// waiter, now and later, until `reinit()`. Waiting is a sleeping call, checked.
public final class Completion: Sendable {
    private static let all = UInt.max
    private let queue = WaitQueue()
    private let done = LockedValue<UInt>(0)

    public init() {}

    /// Lets one waiter through (`complete`).
    public func complete() {
        queue.lock.withLock { done.withLock { if $0 != Self.all { $0 += 1 } } }
        queue.wakeAll()
    }

    /// Lets every waiter through, now and until `reinit()` (`complete_all`).
    public func completeAll() {
        queue.lock.withLock { done.withLock { $0 = Self.all } }
        queue.wakeAll()
    }

    /// Makes the completion not done again (`reinit_completion`).
    public func reinit() { queue.lock.withLock { done.withLock { $0 = 0 } } }

    /// Whether a wait would return at once (`completion_done`).
    public var isDone: Bool { queue.lock.withLock { done.withLock { $0 > 0 } } }

    /// Waits until completed or until `timeout` seconds have passed
    /// (`wait_for_completion_timeout`). Returns whether it was completed.
    ///
    /// - Throws: `AtomicContextViolation` in atomic context; nothing was consumed.
    @available(*, noasync, message: "blocks the thread")
    @discardableResult
    public func wait(
        timeout: Double = .infinity, file: StaticString = #fileID, line: UInt = #line
    ) throws(AtomicContextViolation) -> Bool {
        try AtomicContext.mightSleep("Completion.wait(timeout:)", file: file, line: line)
        let deadline = Deadline.after(seconds: timeout)
        return queue.lock.withLock {
            let ok = queue.waitLocked(until: deadline) { done.withLock { $0 > 0 } }
            if ok { done.withLock { if $0 != Self.all { $0 -= 1 } } }
            return ok
        }
    }
}
