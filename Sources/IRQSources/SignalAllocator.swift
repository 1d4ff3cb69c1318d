import CSupport
import Glibc
import IRQCore
import KernelRuntime
import SystemPackage

/// The process-wide owner table of signals: a signal belongs to one owner at a time (a
/// signal line, or a `TerminationSignal`), and a second claim fails with `EBUSY` naming
/// the owner, instead of silently stealing the signal. Signal lines take real-time signals
/// (SIGRTMIN+k); SIGUSR1/SIGUSR2 are never given to them (liburcu's signal flavour owns
/// them).
///
/// Each signal has one "wire" eventfd that the shim's handler writes, created on first use
/// and kept open for the life of the process (as the handler is): a handler that read the
/// wire just before its owner let go may still write to it, and must never write into a
/// reused descriptor. So claiming and releasing signals leaks nothing.
public enum SignalAllocator {
    private struct State {
        /// Signal → who holds it.
        var owners: [Int32: String] = [:]
        /// Signal → its wire, never closed.
        var wires: [Int32: Int32] = [:]
        /// Raises found on a wire at release or at the next claim: late signals for an
        /// owner that let go.
        var stale: [Int32: UInt64] = [:]
    }

    private static let state = LockedValue(State())

    /// SIGRTMIN and SIGRTMAX of this process (glibc reserves the first few).
    public static var range: ClosedRange<Int32> { CSupport_sigrtmin()...CSupport_sigrtmax() }

    /// Who holds `signal` now (a line's description, `TerminationSignal`), or nil.
    public static func owner(of signal: Int32) -> String? { state.withLock { $0.owners[signal] } }

    /// Takes `signal` (or, if nil, the lowest free real-time signal) for `owner`, with its
    /// wire, emptied of raises that arrived for an earlier owner, and points the shim's
    /// handler at the wire.
    ///
    /// - Throws: `busy` (EBUSY) naming the owner if the signal is taken, or if no real-time
    ///   signal is free; `invalidArgument` for a signal outside `allowed`; `system` if the
    ///   handler cannot be installed. Nothing is taken on error.
    static func claim(
        _ signal: Int32?, owner: String, allowed: ClosedRange<Int32>, irq: IRQNumber?
    ) throws(IRQError) -> (signal: Int32, wire: Int32) {
        let claimed = try state.withLock { (state: inout State) throws(IRQError) -> (signal: Int32, wire: Int32) in
            let chosen: Int32
            if let signal {
                guard allowed.contains(signal), signal != SIGKILL, signal != SIGSTOP else {
                    throw .invalidArgument(irq: irq, reason: "signal \(signal) cannot be taken (allowed: \(allowed))")
                }
                if let holder = state.owners[signal] {
                    throw .busy(irq: irq, reason: "signal \(signalName(signal)) is taken by \(holder)")
                }
                chosen = signal
            } else {
                guard let free = range.first(where: { state.owners[$0] == nil }) else {
                    throw .busy(irq: irq, reason: "no free real-time signal")
                }
                chosen = free
            }
            let wire: Int32
            if let existing = state.wires[chosen] {
                wire = existing
                state.stale[chosen, default: 0] &+= EventFD.drain(wire)
            } else {
                wire = try syscall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
                state.wires[chosen] = wire
            }
            state.owners[chosen] = owner
            return (chosen, wire)
        }
        let rc = CSupport_signal_forward(claimed.signal, claimed.wire)
        guard rc == 0 else {
            release(claimed.signal)
            throw .system(call: "sigaction(\(signalName(claimed.signal)))", errno: Errno(rawValue: rc))
        }
        return claimed
    }

    /// Gives `signal` back: the handler stops writing its wire (later signals are counted as
    /// stray), and raises still on the wire count as stray.
    static func release(_ signal: Int32) {
        _ = CSupport_signal_forward(signal, -1)
        state.withLock { state in
            state.owners[signal] = nil
            if let wire = state.wires[signal] { state.stale[signal, default: 0] &+= EventFD.drain(wire) }
        }
    }

    /// `RTMIN+k` for a real-time signal (as `kill -s` takes it), else `SIGNAME` or the
    /// number.
    public static func signalName(_ signal: Int32) -> String {
        if range.contains(signal) { return "RTMIN+\(signal - CSupport_sigrtmin())" }
        let names: [Int32: String] = [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGHUP: "SIGHUP", SIGQUIT: "SIGQUIT",
                                      SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGALRM: "SIGALRM", SIGCHLD: "SIGCHLD"]
        return names[signal] ?? "signal \(signal)"
    }

    /// Signals that arrived for `signal` while nobody held it, or after its owner let go
    /// (counted, never the default action).
    public static func strayCount(_ signal: Int32) -> UInt64 {
        CSupport_signal_stray_count(signal) &+ state.withLock { $0.stale[signal] ?? 0 }
    }
}
