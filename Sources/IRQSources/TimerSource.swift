import CSupport
import Glibc
import IRQCore
import Synchronization

/// A timerfd line (`CLOCK_MONOTONIC`): one-shot or periodic. Expirations that pass before
/// the handler runs fold into one interrupt; `raised` counts every expiration.
final class TimerSource: InterruptSource, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `timerFD` is immutable; `periodic` is atomic.
    private let timerFD: Int32
    private let periodic = Atomic<Bool>(false)

    init() throws(IRQError) {
        timerFD = try syscall("timerfd_create") {
            timerfd_create(CLOCK_MONOTONIC, Int32(TFD_CLOEXEC | TFD_NONBLOCK))
        }
    }

    deinit { close(timerFD) }

    var chipName: String { "timerfd" }
    var hwirq: Int { Int(timerFD) }
    var fd: Int32? { timerFD }
    var isPeriodic: Bool { periodic.load(ordering: .relaxed) }

    @inline(__always)
    func acknowledge() -> UInt64 {
        var expirations: UInt64 = 0
        return unsafe read(timerFD, &expirations, 8) == 8 ? expirations : 0
    }

    func hasPendingInput() -> Bool { readable(timerFD) }

    /// Fires after `initial` seconds, then every `interval` seconds (0: once).
    func arm(initial: Double, interval: Double) throws(IRQError) {
        var spec = itimerspec(it_interval: Self.timespec(interval), it_value: Self.timespec(max(initial, 1e-9)))
        _ = try syscall("timerfd_settime") { unsafe timerfd_settime(timerFD, 0, &spec, nil) }
        periodic.store(interval > 0, ordering: .relaxed)
    }

    func disarm() {
        var spec = itimerspec()
        _ = unsafe timerfd_settime(timerFD, 0, &spec, nil)
        periodic.store(false, ordering: .relaxed)
    }

    /// A raise from this process: a one-shot expiration as soon as possible.
    func raise() throws(IRQError) {
        var spec = itimerspec(it_interval: Self.timespec(0), it_value: Self.timespec(1e-9))
        _ = try syscall("timerfd_settime") { unsafe timerfd_settime(timerFD, 0, &spec, nil) }
    }

    func shutdown() { disarm() }

    private static func timespec(_ seconds: Double) -> Glibc.timespec {
        let ns = UInt64(max(0, seconds) * 1e9)
        return Glibc.timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    }
}

extension IRQController {
    /// Adds a timerfd line. It fires after `initial` seconds and then every `interval`
    /// seconds (0: once); `initial` nil leaves it disarmed until `armTimer`.
    ///
    /// - Throws: `invalidArgument` for a level trigger (timers are edge).
    @discardableResult
    public func addTimerLine(initial: Double? = nil, interval: Double = 0, cpu: Int? = nil) throws(IRQError) -> IRQNumber {
        let irq = try addLine(trigger: .triggerRising, cpu: cpu) { _ throws(IRQError) in try TimerSource() }
        if let initial { try armTimer(irq, initial: initial, interval: interval) }
        return irq
    }

    /// (Re)arms a timer line.
    public func armTimer(_ irq: IRQNumber, initial: Double, interval: Double = 0) throws(IRQError) {
        guard let timer = try source(of: irq) as? TimerSource else {
            throw .invalidArgument(irq: irq, reason: "not a timer line")
        }
        try timer.arm(initial: initial, interval: interval)
    }

    /// Stops a timer line.
    public func disarmTimer(_ irq: IRQNumber) throws(IRQError) {
        guard let timer = try source(of: irq) as? TimerSource else {
            throw .invalidArgument(irq: irq, reason: "not a timer line")
        }
        timer.disarm()
    }
}
