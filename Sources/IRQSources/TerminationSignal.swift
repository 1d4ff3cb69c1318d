import CSupport
import Glibc
import IRQCore
import KernelRuntime

/// Catches SIGINT/SIGTERM (or other signals) for a program built on irqemu, without running
/// Swift in a signal handler: the shim's async-signal-safe handler writes the signal's wire
/// eventfd, which `wait(timeout:)` polls.
///
/// It owns its signals while it lives (`SignalAllocator`): a second `TerminationSignal`, or
/// a signal line, for one of them fails with `EBUSY` instead of stealing it. Releasing it
/// gives them back; a signal that arrives after that is counted as stray, not fatal.
public final class TerminationSignal: Sendable {
    /// The signals caught, in the order given.
    public let signals: [Int32]
    private let wires: [Int32]

    /// Catches `signals`.
    ///
    /// - Throws: `busy` (EBUSY) if one of them is owned already, naming the owner;
    ///   `invalidArgument` for SIGKILL, SIGSTOP or a number that is not a signal. Nothing
    ///   is caught on error.
    public init(_ signals: [Int32] = [SIGINT, SIGTERM]) throws(IRQError) {
        var claimed: [(signal: Int32, wire: Int32)] = []
        for signal in signals {
            do throws(IRQError) {
                claimed.append(try SignalAllocator.claim(signal, owner: "a TerminationSignal", allowed: 1...CSupport_sigrtmax(), irq: nil))
            } catch {
                for taken in claimed { SignalAllocator.release(taken.signal) }
                throw error
            }
        }
        self.signals = claimed.map(\.signal)
        wires = claimed.map(\.wire)
    }

    deinit {
        for signal in signals { SignalAllocator.release(signal) }
    }

    /// Waits for one of the signals and returns it. `timeout` follows `Deadline`'s policy
    /// (nil: no limit; zero: check once).
    ///
    /// - Throws: `timedOut` if none arrived in time; `atomicContext` in atomic context.
    @available(*, noasync, message: "blocks the thread")
    @discardableResult
    public func wait(timeout: Duration?, file: StaticString = #fileID, line: UInt = #line) throws(IRQError) -> Int32 {
        do {
            try AtomicContext.mightSleep("TerminationSignal.wait(timeout:)", file: file, line: line)
        } catch { throw .atomicContext(error) }
        let deadline = Deadline.after(timeout)
        var fds = wires.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while true {
            let ms = deadline.remaining.map { Int32(clamping: ($0.clampedNanoseconds + 999_999) / 1_000_000) } ?? -1
            let r = unsafe poll(&fds, nfds_t(fds.count), ms)
            if r > 0, let index = fds.firstIndex(where: { $0.revents & Int16(POLLIN) != 0 }) {
                return signals[index]
            }
            if r == -1 && errno == EINTR { continue }  // another signal (an IRQ line's) arrived
            if deadline.hasPassed || r == 0 && !deadline.isNever {
                throw .timedOut(operation: "TerminationSignal.wait", after: timeout ?? .zero)
            }
        }
    }

    /// Whether one of the signals has arrived (without waiting or consuming it).
    public var arrived: Bool { wires.contains(where: isReadable) }
}
