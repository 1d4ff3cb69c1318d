/// How a dispatcher CPU waits for interrupts.
public enum DispatchMode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Sleeps in `epoll_wait` until an interrupt arrives (an idle CPU).
    case blocking
    /// Spins on `epoll_wait(…, 0)`: lowest latency, one core busy per CPU (`idle=poll`).
    case polling

    /// `blocking` or `polling`.
    public var description: String { rawValue }
}
