import Synchronization

/// The deterministic software trigger: `IRQController.raise(_:)` for edge lines,
/// `assertLine(_:)` / `deassertLine(_:)` for level lines. No descriptor: a raise triggers
/// the line, which kicks its CPU's dispatcher, which runs the flow handler as for any
/// other source. Built on the public `InterruptSource` protocol alone.
final class SoftwareSource: InterruptSource, LevelInput, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `line` is set once, by `attach(to:)`, before the line is
    // published; `asserted` is atomic.
    let index: Int
    private var line: InterruptLine?
    private let asserted = Atomic<Bool>(false)

    init(index: Int) { self.index = index }

    var chipName: String { "soft" }
    var hwirq: Int { index }
    var fileDescriptor: Int32? { nil }
    var levelInput: (any LevelInput)? { self }

    func attach(to line: InterruptLine) { self.line = line }

    func raise() throws(IRQError) { line?.trigger() }

    var isAsserted: Bool { asserted.load(ordering: .acquiring) }

    func setAsserted(_ asserted: Bool) throws(IRQError) {
        self.asserted.store(asserted, ordering: .sequentiallyConsistent)
        if asserted { line?.trigger() }
    }

    func lineUnmasked() {
        if isAsserted { line?.trigger() }
    }
}
