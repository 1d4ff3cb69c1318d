import Synchronization

/// The deterministic software trigger: `IRQController.raise(_:)` for edge lines,
/// `assert(_:)` / `deassert(_:)` for level lines. No descriptor: a raise marks the line and
/// kicks its CPU's dispatcher, which runs the flow handler as for any other source.
final class SoftwareSource: InterruptSource, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `descriptor` is set once, before the line is published.
    let index: Int
    unowned(unsafe) var descriptor: IRQDescriptor?
    /// A level line's input: asserted until the device side deasserts it.
    let asserted = Atomic<Bool>(false)

    init(index: Int) { self.index = index }

    var chipName: String { "soft" }
    var hwirq: Int { index }
    var fd: Int32? { nil }
    var supportsLevel: Bool { true }

    /// Takes a raise latched while the line was masked (folded into a replay).
    func acknowledge() -> UInt64 {
        guard let descriptor = unsafe descriptor else { return 0 }
        return descriptor.softPending.exchange(false, ordering: .sequentiallyConsistent) ? 1 : 0
    }
    func hasPendingInput() -> Bool { false }
    func shutdown() {}

    func raise() throws(IRQError) {
        guard let descriptor = unsafe descriptor else { return }
        descriptor.softwareRaise()
    }

    /// A raise held while the line was masked, or a level line still asserted, is
    /// delivered now.
    func didUnmask() {
        guard let descriptor = unsafe descriptor else { return }
        if descriptor.isLevel {
            if asserted.load(ordering: .acquiring) { descriptor.softwareRaise() }
        } else if descriptor.softPending.load(ordering: .acquiring) {
            descriptor.dispatcher.kickSoftware()
        }
    }
}
