import CSupport
import Glibc
import IRQCore

/// A real-time signal line: `kill` or `sigqueue` of SIGRTMIN+k, from this process or any
/// other, raises it.
///
/// No Swift runs in the signal handler: a minimal async-signal-safe handler in the C shim
/// (SA_RESTART; saves errno) adds 1 to the signal's wire eventfd, which the dispatcher
/// watches. The handler stays installed, and the wire open, for the life of the process, so
/// a signal that arrives after the line is shut down is counted
/// (`SignalAllocator.strayCount`) instead of terminating the process.
final class SignalSource: InterruptSource, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): immutable after init.
    let signal: Int32
    /// The signal's wire: the allocator's, never closed.
    private let wire: Int32

    init(signal requested: Int32?, irq: IRQNumber, controller: String) throws(IRQError) {
        (signal, wire) = try SignalAllocator.claim(
            requested, owner: "irq \(irq) of controller \(controller)", allowed: SignalAllocator.range, irq: irq)
    }

    var chipName: String { "signal" }
    var hwirq: Int { Int(signal) }
    var fileDescriptor: Int32? { wire }

    @inline(__always)
    func acknowledge() -> UInt64 { EventFD.drain(wire) }

    func hasPendingInput() -> Bool {
        if isReadable(wire) { return true }
        var set = sigset_t()
        unsafe sigemptyset(&set)
        guard unsafe sigpending(&set) == 0 else { return false }
        return unsafe sigismember(&set, signal) == 1
    }

    /// Sends the signal to the calling thread with it unblocked there, so the handler has
    /// run (and written the wire) when this returns, as `raise(3)` guarantees: a `quiesce`
    /// that follows never misses it. (A process-directed `kill` is taken by any thread that
    /// has it unblocked, later.)
    func raise() throws(IRQError) {
        var only = sigset_t(), previous = sigset_t()
        unsafe sigemptyset(&only)
        unsafe sigaddset(&only, signal)
        let rc = unsafe pthread_sigmask(SIG_UNBLOCK, &only, &previous)
        guard rc == 0 else { throw .system(call: "pthread_sigmask", errno: .init(rawValue: rc)) }
        defer { _ = unsafe pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let sent = pthread_kill(pthread_self(), signal)
        guard sent == 0 else { throw .system(call: "pthread_kill(\(SignalAllocator.signalName(signal)))", errno: .init(rawValue: sent)) }
    }

    func shutdown() { SignalAllocator.release(signal) }
}

/// Real-time signal lines.
extension IRQController {
    /// Adds a line raised by a real-time signal: `signal` (an absolute number in
    /// `SignalAllocator.range`) or the lowest free one.
    ///
    /// - Throws: `busy` (EBUSY) if the signal is taken (by another line or a
    ///   `TerminationSignal`), naming its owner; `invalidArgument` for a signal outside the
    ///   real-time range.
    @discardableResult
    public func addSignalLine(signal: Int32? = nil, cpu: Int? = nil) throws(IRQError) -> IRQNumber {
        let name = self.name
        return try addLine(trigger: .triggerRising, cpu: cpu) { irq throws(IRQError) in
            try SignalSource(signal: signal, irq: irq, controller: name)
        }
    }

    /// The real-time signal of a signal line.
    public func signal(of irq: IRQNumber) throws(IRQError) -> Int32 {
        guard let source = try source(of: irq) as? SignalSource else {
            throw .invalidArgument(irq: irq, reason: "not a signal line")
        }
        return source.signal
    }
}
