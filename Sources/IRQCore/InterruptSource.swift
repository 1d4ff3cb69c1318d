/// The hardware behind an interrupt line: an eventfd, a real-time signal, a timerfd, or the
/// software trigger. The IRQ core drives it through this protocol; `IRQSources` provides
/// the file-descriptor kinds.
package protocol InterruptSource: AnyObject, Sendable {
    /// The chip column of `/proc/interrupts` (`eventfd`, `signal`, `timerfd`, `soft`).
    var chipName: String { get }
    /// The hwirq column: the fd, signal number or software index.
    var hwirq: Int { get }
    /// The descriptor the dispatcher watches, or nil for a source that raises the line
    /// through the CPU's kick (the software trigger).
    var fd: Int32? { get }
    /// Whether the line may be level-triggered (software lines, eventfd lines with a
    /// resample eventfd).
    var supportsLevel: Bool { get }
    /// A periodic timer: excluded from `quiesce`.
    var isPeriodic: Bool { get }

    /// Acknowledges the interrupt at the source: drains the descriptor. Returns how many
    /// raises it folded together (0 for a wake-up with nothing to read). Hard-IRQ context.
    func acknowledge() -> UInt64
    /// Whether the source holds a raise not yet acknowledged (for `quiesce`).
    func hasPendingInput() -> Bool
    /// Called after the line is unmasked: a level source re-raises if still asserted.
    func didUnmask()
    /// Raises the line from this process.
    func raise() throws(IRQError)
    /// Releases the hardware (closes descriptors, detaches the signal).
    func shutdown()
}

extension InterruptSource {
    package var supportsLevel: Bool { false }
    package var isPeriodic: Bool { false }
    package func didUnmask() {}
}
