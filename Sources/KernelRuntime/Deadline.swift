import Glibc

/// A point on the monotonic clock (`CLOCK_MONOTONIC`), in nanoseconds.
public struct Deadline: Sendable, Hashable, Comparable {
    public let nanoseconds: UInt64

    /// No deadline: wait as long as it takes.
    public static let never = Deadline(nanoseconds: .max)

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current monotonic time.
    public static var now: Deadline { Deadline(nanoseconds: monotonicNanoseconds()) }

    /// `seconds` from now: now for zero or less (`-.infinity` included), `.never` for
    /// `.infinity` or anything beyond 10⁹ s.
    ///
    /// - Precondition: `seconds` is not NaN.
    public static func after(seconds: Double) -> Deadline {
        precondition(!seconds.isNaN, "Deadline.after(seconds:): NaN")
        guard seconds < 1e9 else { return .never }
        guard seconds > 0 else { return .now }
        return Deadline(nanoseconds: monotonicNanoseconds() &+ UInt64(seconds * 1e9))
    }

    public var isNever: Bool { nanoseconds == .max }
    public var hasPassed: Bool { !isNever && monotonicNanoseconds() >= nanoseconds }

    public static func < (a: Deadline, b: Deadline) -> Bool { a.nanoseconds < b.nanoseconds }

    /// Sleeps until the deadline on the monotonic clock, through signal interruptions.
    /// Returns at once for a deadline that has passed; never for `.never`.
    @available(*, noasync, message: "blocks the thread")
    public func sleep() {
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
