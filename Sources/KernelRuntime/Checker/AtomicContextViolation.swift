/// A sleeping call made in atomic context, reported and refused.
///
/// Thrown by every sleeping API of irqemu when it is called inside a hard-IRQ handler, an
/// RCU read-side section, a spinlock or an irqs-off section; and by a mutex-strategy
/// `Revocable.revoke()` inside that Revocable's own access, where it would wait for itself
/// (reported as lockdep's possible recursive locking); and by `RCUReadGuard`'s initializer in
/// a task, where a guard-form read-side section could outlive the thread it was taken on
/// (`BUG: irqemu: RCU read-side section started in a task`). The call did nothing: every
/// state is as it was before it. The same report went to the log in scope.
public struct AtomicContextViolation: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kernel's lines (`BUG: sleeping function called from invalid context at …`).
    public let report: KernelReport

    /// A violation carrying `report`.
    public init(report: KernelReport) { self.report = report }

    /// The refused API.
    public var function: String { report.function }
    /// The report's text.
    public var description: String { report.description }
}
