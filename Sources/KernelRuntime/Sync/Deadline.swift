import Glibc

/// A point on the monotonic clock (`CLOCK_MONOTONIC`), in nanoseconds.
///
/// Every timed wait in irqemu follows one policy, stated here once:
/// - A timeout is a `Duration`. `nil`, where a call accepts it, means no limit.
/// - A timeout of zero or less checks once and does not wait.
/// - When the time runs out the call throws its module's `timedOut` error
///   (`WaitError.timedOut`, `IRQError.timedOut`), which names the operation and the
///   timeout; it never returns `false` or `nil` for a timeout.
public struct Deadline: Sendable, Hashable, Comparable {
    /// Nanoseconds since an unspecified point in the past (boot, on Linux).
    public let nanoseconds: UInt64

    /// No deadline: wait as long as it takes.
    public static let never = Deadline(nanoseconds: .max)

    /// The point `nanoseconds` on the monotonic clock (see `monotonicNanoseconds()`).
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current monotonic time.
    public static var now: Deadline { Deadline(nanoseconds: monotonicNanoseconds()) }

    /// `timeout` from now: now for zero or less, `.never` for nil or anything beyond 10⁹ s.
    public static func after(_ timeout: Duration?) -> Deadline {
        guard let timeout else { return .never }
        let (seconds, attoseconds) = timeout.components
        guard seconds < 1_000_000_000 else { return .never }
        guard timeout > .zero else { return .now }
        let ns = UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
        return Deadline(nanoseconds: monotonicNanoseconds() &+ ns)
    }

    /// Whether this is `.never`.
    public var isNever: Bool { nanoseconds == .max }
    /// Whether the deadline is in the past (never true for `.never`).
    public var hasPassed: Bool { !isNever && monotonicNanoseconds() >= nanoseconds }
    /// Time left until the deadline: zero once it has passed, nil for `.never`.
    public var remaining: Duration? {
        guard !isNever else { return nil }
        let now = monotonicNanoseconds()
        return .nanoseconds(nanoseconds > now ? Int64(clamping: nanoseconds - now) : 0)
    }

    /// The earlier deadline is smaller; `never` is the largest.
    public static func < (a: Deadline, b: Deadline) -> Bool { a.nanoseconds < b.nanoseconds }

    /// Sleeps until the deadline on the monotonic clock, through signal interruptions.
    /// Returns at once for a deadline that has passed; never for `.never`.
    ///
    /// - Throws: `AtomicContextViolation` in atomic context (a sleep is a sleeping call);
    ///   it did not sleep.
    @available(*, noasync, message: "blocks the thread; use Task.sleep in async code")
    public func sleep(file: StaticString = #fileID, line: UInt = #line) throws(AtomicContextViolation) {
        try AtomicContext.mightSleep("Deadline.sleep()", file: file, line: line)
        var ts = timespec
        while unsafe clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
    }

    package var timespec: timespec {
        Glibc.timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds (vDSO, no system call, ~20 ns).
@inlinable
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    unsafe clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Conversions the library's figures and timeouts use.
extension Duration {
    /// The duration in seconds, as a `Double` (for printing and arithmetic on figures).
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    /// The duration in whole nanoseconds, clamped to `UInt64` (negative: 0).
    package var clampedNanoseconds: UInt64 {
        let (s, atto) = components
        guard s >= 0, atto >= 0 else { return 0 }
        guard s < Int64(UInt64.max / 1_000_000_000) - 1 else { return .max }
        return UInt64(s) * 1_000_000_000 + UInt64(atto / 1_000_000_000)
    }
}
