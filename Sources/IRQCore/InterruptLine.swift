/// A source's handle on its line, given to `InterruptSource.attach(to:)`: raises the line
/// without a file descriptor, as the software trigger does.
///
/// Raises coalesce until the line's CPU takes them (an edge: one interrupt for a burst);
/// a raise while the line is masked is latched and delivered when it is unmasked. Each
/// call counts in the line's `raised` statistic.
public struct InterruptLine: Sendable {
    unowned let descriptor: IRQDescriptor

    init(_ descriptor: IRQDescriptor) { self.descriptor = descriptor }

    /// The line's number.
    public var irq: IRQNumber { descriptor.irq }

    /// Raises the line: marks it and kicks its CPU. Any thread, any context; never blocks.
    public func trigger() { descriptor.softwareRaise() }
}
