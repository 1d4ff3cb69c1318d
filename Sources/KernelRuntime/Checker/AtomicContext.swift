import CSupport

/// The atomic-context checker: the kernel's `CONFIG_DEBUG_ATOMIC_SLEEP` for the calling
/// thread.
///
/// A thread is in atomic context while it runs a hard-IRQ handler, holds an RCU read lock,
/// holds a `SpinLock`, runs a `call_rcu` callback or has interrupts disabled
/// (`withIRQsDisabled`). Every sleeping API of irqemu calls `mightSleep()` on entry; in
/// atomic context that prints the kernel's report to the log in scope and throws, so the
/// call is refused instead of deadlocking (the kernel would sleep in atomic context, and
/// liburcu's `synchronize_rcu` inside a read-side section never returns).
///
/// The state is per thread and costs a thread-local load to read.
public enum AtomicContext {
    /// A snapshot of the calling thread's context.
    public struct State: Sendable, Hashable, CustomStringConvertible {
        /// Hard-IRQ handler nesting (the kernel's `hardirq_count()`).
        public var hardIRQ: Int
        /// Softirq nesting: `call_rcu` callbacks (`softirq_count()`).
        public var softIRQ: Int
        /// Spinlocks held.
        public var spinlocks: Int
        /// Whether interrupts are off (`irqs_disabled()`): in a hard-IRQ handler, under
        /// `withLockIRQSave`, or in `withIRQsDisabled`.
        public var irqsDisabled: Bool
        /// RCU read-side nesting (`rcu_preempt_depth()`).
        public var rcuNestDepth: Int

        /// The kernel's `preempt_count()`: HARDIRQ_OFFSET 0x10000, SOFTIRQ_OFFSET 0x100,
        /// one per spinlock.
        public var preemptCount: Int { hardIRQ * 0x10000 + softIRQ * 0x100 + spinlocks }
        /// The kernel's `in_atomic()`: `preempt_count() != 0`.
        public var inAtomic: Bool { preemptCount != 0 }
        /// Whether a sleeping call here is a bug (`__might_resched`'s test, with preemptible
        /// RCU's nest depth).
        public var isAtomic: Bool { inAtomic || irqsDisabled || rcuNestDepth != 0 }

        /// One line: `hardirq=… softirq=… spinlocks=… irqs_disabled=… rcu_nest=…`.
        public var description: String {
            "hardirq=\(hardIRQ) softirq=\(softIRQ) spinlocks=\(spinlocks) irqs_disabled=\(irqsDisabled) rcu_nest=\(rcuNestDepth)"
        }
    }

    /// The calling thread's context.
    public static var state: State {
        State(
            hardIRQ: Int(ThreadState.hardIRQ),
            softIRQ: Int(ThreadState.softIRQ),
            spinlocks: Int(ThreadState.preempt),
            irqsDisabled: ThreadState.irqsOff > 0 || ThreadState.hardIRQ > 0,
            rcuNestDepth: Int(CSupport_rcu_read_depth())
        )
    }

    /// Whether the calling thread may not sleep.
    public static var isAtomic: Bool {
        ThreadState.hardIRQ != 0 || ThreadState.softIRQ != 0 || ThreadState.preempt != 0
            || ThreadState.irqsOff != 0 || CSupport_rcu_read_ongoing()
    }

    /// Whether the calling thread runs a hard-IRQ handler (the kernel's `in_hardirq()`).
    public static var inHardIRQ: Bool { ThreadState.hardIRQ != 0 }

    /// Whether the calling thread runs a hard-IRQ handler or a softirq (a `call_rcu`
    /// callback): the kernel's `in_interrupt()`.
    public static var inInterrupt: Bool { ThreadState.hardIRQ != 0 || ThreadState.softIRQ != 0 }

    /// The kernel's `might_sleep()`: in atomic context, reports the call with the kernel's
    /// lines and throws; otherwise returns at once.
    ///
    /// - Parameters:
    ///   - function: The sleeping API being entered, named in the report.
    ///   - log: Where the report goes; `KernelLog.current` if nil.
    ///   - extra: Lines printed before the `BUG:` line (lockdep's `Illegal
    ///     synchronize_rcu()` warning, for instance).
    ///   - file: The caller's `#fileID`; public APIs pass their own caller's.
    ///   - line: The caller's `#line`.
    @inline(__always)
    public static func mightSleep(
        _ function: String,
        log: KernelLog? = nil,
        extra: [String] = [],
        file: StaticString = #fileID,
        line: UInt = #line
    ) throws(AtomicContextViolation) {
        guard _slowPath(isAtomic) else { return }
        throw sleepingCallReported(function, log: log, extra: extra, file: "\(file)", line: line)
    }

    /// Builds and records the report for a sleeping call in atomic context.
    @inline(never)
    public static func sleepingCallReported(
        _ function: String,
        log: KernelLog?,
        extra: [String] = [],
        file: String,
        line: UInt
    ) -> AtomicContextViolation {
        let s = state
        var lines = extra
        lines.append("BUG: sleeping function called from invalid context at \(file):\(line)")
        lines.append("in_atomic(): \(s.inAtomic ? 1 : 0), irqs_disabled(): \(s.irqsDisabled ? 1 : 0), non_block: 0, pid: \(ThreadState.tid), name: \(ThreadState.name)")
        lines.append("preempt_count: \(String(s.preemptCount, radix: 16)), expected: 0")
        lines.append("RCU nest depth: \(s.rcuNestDepth), expected: 0")
        lines.append("Call Trace:")
        lines.append(" \(function) refused by irqemu (would sleep in atomic context)")
        return AtomicContextViolation(report: record(.sleepInAtomic, lines, function: function, log: log, file: file, line: line))
    }

    /// Records a kernel `WARN` (or a lifetime violation) with the calling thread's identity:
    /// `lines`, then the stack dump (`CPU:` and `Call Trace:` lines), then `trailing` (what
    /// the kernel prints after `dump_stack()`).
    @discardableResult
    public static func warn(
        _ kind: KernelReport.Kind = .warning,
        _ lines: [String],
        trailing: [String] = [],
        function: String,
        log: KernelLog?,
        file: String,
        line: UInt
    ) -> KernelReport {
        var all = lines
        all.append("CPU: \(max(ThreadState.cpu, 0)) PID: \(ThreadState.tid) Comm: \(ThreadState.name)")
        all.append("Call Trace:")
        all.append(" \(function) at \(file):\(line)")
        all.append(contentsOf: trailing)
        return record(kind, all, function: function, log: log, file: file, line: line)
    }

    /// Records a report made on the calling thread to `log` (or the log in scope).
    private static func record(
        _ kind: KernelReport.Kind, _ lines: [String], function: String, log: KernelLog?, file: String, line: UInt
    ) -> KernelReport {
        var lines = lines
        // While faults are injected every report says which, so the run can be repeated.
        if let faults = FaultInjection.reportLine { lines.append(faults) }
        let report = KernelReport(
            kind: kind, lines: lines, function: function, file: file, line: line, tid: ThreadState.tid,
            threadName: ThreadState.name)
        (log ?? KernelLog.current).record(report)
        return report
    }

    /// Runs `body` with interrupts disabled on the calling thread (`local_irq_save` /
    /// `local_irq_restore`): atomic context.
    public static func withIRQsDisabled<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        ThreadState.irqsOff += 1
        defer { ThreadState.irqsOff -= 1 }
        return try body()
    }

    // MARK: - Context transitions for the layers above

    /// Marks the calling thread as running a hard-IRQ handler (`irq_enter`). Used by the
    /// IRQ dispatcher.
    @inline(__always) package static func enterHardIRQ() { ThreadState.hardIRQ += 1 }
    @inline(__always) package static func exitHardIRQ() { ThreadState.hardIRQ -= 1 }

    /// Marks the calling thread as running a softirq (a `call_rcu` callback).
    @inline(__always) package static func enterSoftIRQ() { ThreadState.softIRQ += 1 }
    @inline(__always) package static func exitSoftIRQ() { ThreadState.softIRQ -= 1 }

    /// `preempt_disable()` / `preempt_enable()`: a spinlock is held.
    @inline(__always) package static func preemptDisable() { ThreadState.preempt += 1 }
    @inline(__always) package static func preemptEnable() { ThreadState.preempt -= 1 }

    @inline(__always) package static func irqsOffEnter() { ThreadState.irqsOff += 1 }
    @inline(__always) package static func irqsOffExit() { ThreadState.irqsOff -= 1 }

    /// The emulated CPU the calling thread stands for: a dispatcher's, or a per-CPU
    /// workqueue worker's (`kworker/C:N`); nil on any other thread.
    public static var cpu: Int? {
        let c = ThreadState.cpu
        return c >= 0 ? Int(c) : nil
    }

    package static func setCPU(_ cpu: Int?) { ThreadState.cpu = Int32(cpu ?? -1) }
}
