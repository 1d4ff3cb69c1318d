import CSupport
import Glibc
import IRQCore
import KernelRuntime
import Synchronization

/// A timerfd line (`CLOCK_MONOTONIC`): one-shot or periodic. Expirations that pass before
/// the handler runs fold into one interrupt; `raised` counts every expiration.
final class TimerSource: InterruptSource, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `timerFD` is immutable; `interval` is only touched with
    // `lock` held; `periodic` is atomic.
    private let timerFD: Int32
    private let periodic = Atomic<Bool>(false)
    /// Orders `arm`, `disarm` and `raise`, so a raise keeps the interval of the last arm.
    private let lock = Lock()
    private var interval = Glibc.timespec()

    init() throws(IRQError) {
        timerFD = try syscall("timerfd_create") {
            timerfd_create(CLOCK_MONOTONIC, Int32(TFD_CLOEXEC | TFD_NONBLOCK))
        }
    }

    deinit { close(timerFD) }

    var chipName: String { "timerfd" }
    var hwirq: Int { Int(timerFD) }
    var fileDescriptor: Int32? { timerFD }
    var isPeriodic: Bool { periodic.load(ordering: .relaxed) }

    @inline(__always)
    func acknowledge() -> UInt64 {
        var expirations: UInt64 = 0
        return unsafe read(timerFD, &expirations, 8) == 8 ? expirations : 0
    }

    /// Fires after `initial`, then every `interval` (zero: once).
    ///
    /// - Throws: `invalidArgument` for a negative time.
    func arm(initial: Duration, interval: Duration, irq: IRQNumber) throws(IRQError) {
        let first = try Self.timespec(initial, "initial", irq: irq)
        let period = try Self.timespec(interval, "interval", irq: irq)
        var spec = itimerspec(it_interval: period, it_value: first.tv_sec == 0 && first.tv_nsec == 0 ? Self.soon : first)
        try lock.withLock { () throws(IRQError) in
            _ = try syscall("timerfd_settime") { unsafe timerfd_settime(timerFD, 0, &spec, nil) }
            self.interval = period
            periodic.store(interval > .zero, ordering: .relaxed)
        }
    }

    func disarm() {
        lock.withLock {
            var spec = itimerspec()
            _ = unsafe timerfd_settime(timerFD, 0, &spec, nil)
            interval = Glibc.timespec()
            periodic.store(false, ordering: .relaxed)
        }
    }

    /// A raise from this process: an expiration as soon as possible. A periodic timer keeps
    /// its interval, counted from now; a one-shot timer armed for later fires now instead.
    func raise() throws(IRQError) {
        try lock.withLock { () throws(IRQError) in
            var spec = itimerspec(it_interval: interval, it_value: Self.soon)
            _ = try syscall("timerfd_settime") { unsafe timerfd_settime(timerFD, 0, &spec, nil) }
        }
    }

    func shutdown() { disarm() }

    /// One nanosecond: the earliest expiration (zero would disarm the timer).
    private static let soon = Glibc.timespec(tv_sec: 0, tv_nsec: 1)

    /// Checks that `time` can be a timer setting and converts it.
    static func timespec(_ time: Duration, _ what: String, irq: IRQNumber) throws(IRQError) -> Glibc.timespec {
        guard time >= .zero else {
            throw .invalidArgument(irq: irq, reason: "timer \(what) \(time) is negative")
        }
        let ns = time.clampedNanoseconds
        return Glibc.timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    }
}

/// Timerfd lines.
extension IRQController {
    /// Adds a timerfd line. It fires after `initial` and then every `interval` (zero:
    /// once); `initial` nil leaves it disarmed until `armTimer`.
    ///
    /// - Throws: `invalidArgument` for a negative time (nothing is added).
    @discardableResult
    public func addTimerLine(initial: Duration? = nil, interval: Duration = .zero, cpu: Int? = nil) throws(IRQError) -> IRQNumber {
        let irq = try addLine(trigger: .triggerRising, cpu: cpu) { irq throws(IRQError) in
            if let initial {
                _ = try TimerSource.timespec(initial, "initial", irq: irq)
                _ = try TimerSource.timespec(interval, "interval", irq: irq)
            }
            return try TimerSource()
        }
        if let initial { try armTimer(irq, initial: initial, interval: interval) }
        return irq
    }

    /// (Re)arms a timer line: it fires after `initial`, then every `interval` (zero: once).
    ///
    /// - Throws: `invalidArgument` for a negative time, or a line that is not a timer line.
    public func armTimer(_ irq: IRQNumber, initial: Duration, interval: Duration = .zero) throws(IRQError) {
        guard let timer = try source(of: irq) as? TimerSource else {
            throw .invalidArgument(irq: irq, reason: "not a timer line")
        }
        try timer.arm(initial: initial, interval: interval, irq: irq)
    }

    /// Stops a timer line.
    public func disarmTimer(_ irq: IRQNumber) throws(IRQError) {
        guard let timer = try source(of: irq) as? TimerSource else {
            throw .invalidArgument(irq: irq, reason: "not a timer line")
        }
        timer.disarm()
    }
}
