/// One splat the emulated kernel printed: a `BUG: sleeping function called from invalid
/// context`, a `WARNING` (double free_irq, unbalanced enable_irq, …) or a lifetime
/// violation the library caught (a Devres read after its release).
public struct KernelReport: Sendable, Hashable, CustomStringConvertible {
    /// What a report is about.
    public enum Kind: String, Sendable, Hashable {
        /// A sleeping call in atomic context (CONFIG_DEBUG_ATOMIC_SLEEP).
        case sleepInAtomic
        /// A kernel `WARN`: the call was wrong but nothing was corrupted.
        case warning
        /// A lifetime rule broken: the access was refused instead of reading freed data.
        case violation
        /// The lock validator (`Lockdep`): a locking problem that could deadlock, found
        /// whether or not it did (see `LockdepProblem`); also a refused relock of a held
        /// Revocable mutex, in lockdep's words.
        case lockdep
        /// The teardown-order check: a handler reads, with `Devres.access(_:)`, data its
        /// device registered after the handler's IRQ, which unbind releases before
        /// free_irq.
        case teardownOrder
    }

    /// What the report is about.
    public let kind: Kind
    /// The lines as the kernel would print them, from the blank line and rule that open a
    /// lockdep report to the call trace.
    public let lines: [String]
    /// The refused or offending API (`RCU.synchronize()`, `freeIRQ(_:devID:)`, …).
    public let function: String
    /// The caller's `#fileID`.
    public let file: String
    /// The caller's `#line`.
    public let line: UInt
    /// Thread id of the reporting thread.
    public let tid: Int32
    /// Name of the reporting thread (its `comm`).
    public let threadName: String

    /// When the report was made, on the monotonic clock (`monotonicNanoseconds()`).
    public let time: UInt64

    /// A report with its lines, made by `function` at `file:line` on thread `tid`, at
    /// `time` (now by default).
    public init(
        kind: Kind, lines: [String], function: String, file: String, line: UInt, tid: Int32, threadName: String,
        time: UInt64 = monotonicNanoseconds()
    ) {
        self.time = time
        self.kind = kind
        self.lines = lines
        self.function = function
        self.file = file
        self.line = line
        self.tid = tid
        self.threadName = threadName
    }

    /// The first line that says something: not blank, not a `====` or `----` rule, not
    /// `------------[ cut here ]------------`.
    public var headline: String {
        lines.first { line in
            !line.isEmpty && !line.allSatisfy { $0 == "=" || $0 == "-" } && line != "------------[ cut here ]------------"
        } ?? ""
    }
    /// The report's lines, as the kernel log shows them.
    public var description: String { lines.joined(separator: "\n") }
}
