import CSupport
import Glibc
import IRQCore
import RCU

/// The process-wide allocator of real-time signals (SIGRTMIN+k): two controllers never
/// share one. SIGUSR1/SIGUSR2 are never used (liburcu's signal flavour owns them).
public enum SignalAllocator {
    private static let taken = LockedValue<Set<Int32>>([])

    /// SIGRTMIN and SIGRTMAX of this process (glibc reserves the first few).
    public static var range: ClosedRange<Int32> { CSupport_sigrtmin()...CSupport_sigrtmax() }

    /// Takes `signal` (an absolute number in `range`) or the lowest free one.
    static func allocate(_ signal: Int32?, irq: IRQNumber) throws(IRQError) -> Int32 {
        let range = self.range
        return try taken.withLock { (taken: inout Set<Int32>) throws(IRQError) -> Int32 in
            if let signal {
                guard range.contains(signal) else {
                    throw .invalidArgument(irq: irq, reason: "signal \(signal) is not a real-time signal (\(range))")
                }
                guard !taken.contains(signal) else {
                    throw .busy(irq: irq, reason: "real-time signal \(signalName(signal)) is taken")
                }
                taken.insert(signal)
                return signal
            }
            guard let free = range.first(where: { !taken.contains($0) }) else {
                throw .busy(irq: irq, reason: "no free real-time signal")
            }
            taken.insert(free)
            return free
        }
    }

    static func release(_ signal: Int32) {
        _ = taken.withLock { $0.remove(signal) }
    }

    /// `RTMIN+k`, as `kill -s` takes it.
    public static func signalName(_ signal: Int32) -> String {
        "RTMIN+\(signal - CSupport_sigrtmin())"
    }

    /// Signals that arrived for `signal` after its line was shut down (counted, never the
    /// default action).
    public static func strayCount(_ signal: Int32) -> UInt64 { CSupport_signal_stray_count(signal) }
}
