import CSupport
import Glibc
import IRQCore
import KernelRuntime

/// Catches SIGINT/SIGTERM (or other signals) for a program built on irqemu, without running
/// Swift in a signal handler: the shim's async-signal-safe handler writes an eventfd that
/// `wait(timeout:)` polls. The handlers stay installed for the life of the process.
public final class TerminationSignal: Sendable {
    private let fd: Int32

    public init(_ signals: [Int32] = [SIGINT, SIGTERM]) throws(IRQError) {
        fd = try syscall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
        for signal in signals {
            let rc = CSupport_signal_forward(signal, fd)
            guard rc == 0 else { throw .system(call: "sigaction(\(signal))", errno: rc) }
        }
    }

    /// Waits up to `timeout` seconds (`.infinity`: no limit; NaN or ≤ 0: a check only) for
    /// one of the signals; returns whether one arrived.
    @available(*, noasync, message: "blocks the thread")
    public func wait(timeout: Double) -> Bool {
        let deadline = timeout.isNaN ? Deadline.now : Deadline.after(seconds: timeout)
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = deadline.isNever ? -1 : Int64(deadline.nanoseconds) - Int64(monotonicNanoseconds())
            let ms = left < 0 && !deadline.isNever ? 0 : Int32(clamping: deadline.isNever ? -1 : (left + 999_999) / 1_000_000)
            let r = unsafe poll(&p, 1, ms)
            if r == 1 { return true }
            if r == -1 && errno == EINTR { continue }  // another signal (an IRQ line's) arrived
            return false
        }
    }

    /// Whether one of the signals has arrived (without waiting).
    public var arrived: Bool { readable(fd) }
}
