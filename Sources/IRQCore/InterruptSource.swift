import Glibc

/// The hardware behind an interrupt line: what raises it, and how the line's CPU notices.
///
/// irqemu's own sources (eventfd, real-time signal, timerfd lines in `IRQSources`, and the
/// software trigger) are built on this protocol alone; a harness adds its own the same way
/// (`IRQController.addLine(trigger:cpu:source:)`): a line driven by a socket, a pipe, or
/// the test's own clock. A source reaches the line's CPU in one of two ways:
/// - It has a `fileDescriptor`, which the CPU watches with `epoll`: readable means raised.
///   The CPU calls `acknowledge()` in hard-IRQ context to drain it.
/// - It has none, and raises through the `InterruptLine` it is given in `attach(to:)`
///   (`InterruptLine.trigger()`), as the software trigger does.
///
/// Level input is a capability: a source that can drive a level-triggered line returns a
/// `LevelInput` from `levelInput`.
///
/// - Important: `acknowledge()` runs in hard-IRQ context on the line's CPU: it must not
///   sleep, and should not allocate.
public protocol InterruptSource: AnyObject, Sendable {
    /// The chip column of `/proc/interrupts` (`eventfd`, `signal`, `timerfd`, `soft`).
    var chipName: String { get }
    /// The hwirq column: the fd, signal number or software index.
    var hwirq: Int { get }
    /// The descriptor the line's CPU watches for readability, or nil for a source that
    /// raises the line through `InterruptLine.trigger()`.
    var fileDescriptor: Int32? { get }
    /// Whether the source fires periodically by itself (a periodic timer): `quiesce` does
    /// not wait for it. Default: false.
    var isPeriodic: Bool { get }
    /// The source's level input, if it can drive a level-triggered line. Default: nil.
    var levelInput: (any LevelInput)? { get }

    /// Called once, when the line is added and before any interrupt: the source may keep
    /// `line` to raise it (`trigger()`). Default: does nothing.
    func attach(to line: InterruptLine)
    /// Acknowledges the interrupt at the source: drains `fileDescriptor`. Returns how many
    /// raises it folded together (0 for a wake-up with nothing to read). Hard-IRQ context.
    /// Default: 0.
    func acknowledge() -> UInt64
    /// Whether the source holds a raise not yet acknowledged (for `quiesce`). Default:
    /// whether `fileDescriptor` is readable now.
    func hasPendingInput() -> Bool
    /// Raises the line from this process (`IRQController.raise(_:)`). Any thread, any
    /// context; must not block.
    func raise() throws(IRQError)
    /// Releases the hardware (closes descriptors, detaches a signal). Called once, when the
    /// controller shuts down, or when the line could not be added. Default: does nothing.
    func shutdown()
}

/// The input of a level-triggered line: asserted until the device side deasserts it. The
/// line fires while it is asserted and unmasked, and again after each unmask while it
/// stays asserted (level lines are never "replayed").
public protocol LevelInput: AnyObject, Sendable {
    /// Whether the input is asserted now.
    var isAsserted: Bool { get }
    /// Drives the input (`IRQController.assertLine(_:)` / `deassertLine(_:)`); asserting
    /// raises the line.
    func setAsserted(_ asserted: Bool) throws(IRQError)
    /// The line was unmasked: raise it again if the input is still asserted (a resample).
    /// Called with the line's lock held: must not block or call back into the controller.
    func lineUnmasked()
}

extension InterruptSource {
    /// Default: not periodic.
    public var isPeriodic: Bool { false }
    /// Default: none (an edge source).
    public var levelInput: (any LevelInput)? { nil }
    /// Default: nothing (a source that raises only through its descriptor).
    public func attach(to line: InterruptLine) {}
    /// Default: nothing to consume; reports 0 events.
    public func acknowledge() -> UInt64 { 0 }
    /// Default: whether the descriptor is readable now (`poll` with no wait); false without one.
    public func hasPendingInput() -> Bool { fileDescriptor.map(isReadable) ?? false }
    /// Default: nothing to close.
    public func shutdown() {}
}

/// Whether `fd` has data to read now (`poll` with a zero timeout).
package func isReadable(_ fd: Int32) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return unsafe poll(&p, 1, 0) == 1 && (p.revents & Int16(POLLIN)) != 0
}
