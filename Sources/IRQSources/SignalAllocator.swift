import CSupport
import Glibc
import IRQCore
import KernelRuntime

/// The process-wide allocator of real-time signals (SIGRTMIN+k): two controllers never
/// share one. SIGUSR1/SIGUSR2 are never used (liburcu's signal flavour owns them).
///
/// Each signal has one "wire" eventfd, created on first use and kept open for the life of
/// the process (as the shim's handler is): a handler that read the wire just before its
/// line was shut down may still write to it, and must never write into a reused
/// descriptor.
public enum SignalAllocator {
    private struct State {
        var taken: Set<Int32> = []
        /// Signal → its wire, never closed.
        var wires: [Int32: Int32] = [:]
        /// Raises found on a wire at release or at the next allocation: late signals for a
        /// line that was shut down.
        var stale: [Int32: UInt64] = [:]
    }

    private static let state = LockedValue(State())

    /// SIGRTMIN and SIGRTMAX of this process (glibc reserves the first few).
    public static var range: ClosedRange<Int32> { CSupport_sigrtmin()...CSupport_sigrtmax() }

    /// Takes `signal` (an absolute number in `range`) or the lowest free one, with its
    /// wire, emptied of raises that arrived for an earlier owner.
    static func allocate(_ signal: Int32?, irq: IRQNumber) throws(IRQError) -> (signal: Int32, wire: Int32) {
        let range = self.range
        return try state.withLock { (state: inout State) throws(IRQError) -> (signal: Int32, wire: Int32) in
            let chosen: Int32
            if let signal {
                guard range.contains(signal) else {
                    throw .invalidArgument(irq: irq, reason: "signal \(signal) is not a real-time signal (\(range))")
                }
                guard !state.taken.contains(signal) else {
                    throw .busy(irq: irq, reason: "real-time signal \(signalName(signal)) is taken")
                }
                chosen = signal
            } else {
                guard let free = range.first(where: { !state.taken.contains($0) }) else {
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
            state.taken.insert(chosen)
            return (chosen, wire)
        }
    }

    /// Gives `signal` back. Raises still on its wire (they arrived after the line's CPU
    /// stopped) count as stray.
    static func release(_ signal: Int32) {
        state.withLock { state in
            state.taken.remove(signal)
            if let wire = state.wires[signal] { state.stale[signal, default: 0] &+= EventFD.drain(wire) }
        }
    }

    /// `RTMIN+k`, as `kill -s` takes it.
    public static func signalName(_ signal: Int32) -> String {
        "RTMIN+\(signal - CSupport_sigrtmin())"
    }

    /// Signals that arrived for `signal` after its line was shut down (counted, never the
    /// default action).
    public static func strayCount(_ signal: Int32) -> UInt64 {
        CSupport_signal_stray_count(signal) &+ state.withLock { $0.stale[signal] ?? 0 }
    }
}
