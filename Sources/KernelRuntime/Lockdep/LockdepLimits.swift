import CSupport

extension Lockdep {
    /// The sizes of the validator's tables: the kernel's `MAX_LOCKDEP_*` defaults (6.x).
    ///
    /// Overflowing one is reported once (`BUG: MAX_LOCKDEP_KEYS too low!`, then `turning off
    /// the locking correctness validator.`) and switches the validator off for the process,
    /// as the kernel does. Lower limits can be set with `Lockdep.reset(limits:)`; higher ones
    /// are clamped to these.
    public struct Limits: Sendable, Hashable {
        /// Lock classes (`MAX_LOCKDEP_KEYS`): 8,192.
        public var classes: Int
        /// Dependency list entries, two per dependency (`MAX_LOCKDEP_ENTRIES`): 32,768.
        public var entries: Int
        /// Distinct chains of held locks (`MAX_LOCKDEP_CHAINS`): 65,536.
        public var chains: Int
        /// Locks summed over every chain (`MAX_LOCKDEP_CHAIN_HLOCKS`, 5 per chain): 327,680.
        public var chainLocks: Int
        /// Saved traces (`MAX_STACK_TRACE_ENTRIES`; a trace here is one frame): 524,288.
        public var traces: Int
        /// Locks one thread holds at once (`MAX_LOCK_DEPTH`): 48; as in the kernel, the
        /// 48th nested lock is the one reported.
        public var depth: Int

        /// Subclasses of one class (`MAX_LOCKDEP_SUBCLASSES`): 0 to 7. A larger one is
        /// reported (`BUG: looking up invalid subclass`) and switches the validator off.
        public static let subclasses = 8

        /// The kernel's defaults, which are also the most the tables hold.
        public static let kernel = Limits(
            classes: 8192, entries: 32768, chains: 65536, chainLocks: 327_680, traces: 524_288,
            depth: Int(CSUPPORT_LOCKDEP_MAX_DEPTH))

        /// Limits of these sizes (`Lockdep.reset(limits:)` clamps them to the kernel's).
        public init(classes: Int, entries: Int, chains: Int, chainLocks: Int, traces: Int, depth: Int) {
            self.classes = classes
            self.entries = entries
            self.chains = chains
            self.chainLocks = chainLocks
            self.traces = traces
            self.depth = depth
        }

        /// Each limit between 1 and the kernel's.
        var clamped: Limits {
            let k = Limits.kernel
            return Limits(
                classes: min(max(classes, 1), k.classes), entries: min(max(entries, 2), k.entries),
                chains: min(max(chains, 1), k.chains), chainLocks: min(max(chainLocks, 1), k.chainLocks),
                traces: min(max(traces, 1), k.traces), depth: min(max(depth, 1), k.depth))
        }
    }

    /// What the validator holds and has reported, process-wide since start or `reset`.
    public struct Statistics: Sendable, Hashable {
        /// Lock classes registered (limit: `Limits.classes`).
        public var classes = 0
        /// Dependencies A -> B recorded (each uses two of `Limits.entries`).
        public var dependencies = 0
        /// Distinct chains of held locks validated (`Limits.chains`).
        public var chains = 0
        /// Locks summed over those chains (`Limits.chainLocks`).
        public var chainLocks = 0
        /// Traces saved (`Limits.traces`).
        public var traces = 0
        /// Reports made, by problem.
        public var reports: [LockdepProblem: Int] = [:]
        /// Whether the validator checks acquisitions now: enabled, and not switched off by
        /// a table overflow.
        public var isActive = false

        /// Reports made of `problem`.
        public func count(_ problem: LockdepProblem) -> Int { reports[problem] ?? 0 }
    }
}

/// The problems the lock validator reports, each with the kernel's headline.
public enum LockdepProblem: String, Sendable, Hashable, CaseIterable {
    /// `WARNING: possible circular locking dependency detected` (AB-BA, or a wait that
    /// holds a lock the waited-for code takes).
    case circular
    /// `WARNING: possible recursive locking detected` (a class taken again without a
    /// subclass), also the refused relock of a Revocable's mutex.
    case recursive
    /// `WARNING: inconsistent lock state` (a class used in hard-IRQ or softirq context and
    /// also taken with interrupts on).
    case inconsistentState
    /// `WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected` (or SOFTIRQ).
    case irqSafeToUnsafe
    /// `WARNING: possible irq lock inversion dependency detected`: the safe -> unsafe order,
    /// found when a class's irq usage changes rather than when the dependency is added.
    case irqInversion
    /// `BUG: MAX_... too low!`: a table overflowed; the validator switched itself off.
    case limitOverflow
    /// A failed `Lockdep.assertHeld` / `assertNotHeld` (a plain WARN).
    case assertion

    /// How the report's headline starts (the whole headline but for `.irqSafeToUnsafe`,
    /// whose state may be SOFTIRQ, `.limitOverflow`, which names the table, and
    /// `.assertion`, which names the caller).
    public var headlinePrefix: String {
        switch self {
        case .circular: "WARNING: possible circular locking dependency detected"
        case .recursive: "WARNING: possible recursive locking detected"
        case .inconsistentState: "WARNING: inconsistent lock state"
        case .irqSafeToUnsafe: "WARNING: "
        case .irqInversion: "WARNING: possible irq lock inversion dependency detected"
        case .limitOverflow: "BUG: "
        case .assertion: "WARNING: CPU: "
        }
    }
}
