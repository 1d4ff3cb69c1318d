import CSupport
import KernelRuntime

/// An RCU read-side critical section, held for as long as the guard lives.
///
/// While it lives, nothing that a reader reached through an RCU-protected path is freed:
/// `RCU.synchronize()` on another thread waits for it. Sections nest. Taking and releasing
/// one costs a few nanoseconds (liburcu's memb flavour, inlined), never blocks, and never
/// allocates.
///
/// The section is atomic context: sleeping calls inside it (`RCU.synchronize()`,
/// `Revocable.revoke()`, `freeIRQ`, a mutex) are reported and refused by the checker.
///
/// - Important: Bind the guard to a name (`let held = try RCUReadGuard()`);
///   `_ = try RCUReadGuard()` ends the section at once. It belongs to the thread that took
///   it and is not `Sendable`.
///
/// In a task the guard is refused (see `init(file:line:)`): liburcu's read lock belongs to
/// a thread, and a task may resume on another thread after a suspension. The closure forms
/// (`RCU.read { }`, `Revocable.tryAccess { }`) cannot suspend, work anywhere, and pay
/// nothing for the check.
public struct RCUReadGuard: ~Copyable {
    /// Enters a read-side section, registering the thread with liburcu on first use.
    ///
    /// - Throws: `AtomicContextViolation` when called in a task (async code, or synchronous
    ///   code an async function called): a suspension while the guard lives could move the
    ///   task to another thread, leaving the section open on the first and unlocking on the
    ///   second. The report (`BUG: irqemu: RCU read-side section started in a task`) goes to
    ///   the log in scope; no section was entered. On any other thread it never throws.
    /// - Complexity: The read lock (a few nanoseconds, inlined) and a call that checks for a
    ///   task (a thread-local load).
    @inlinable
    public init(file: StaticString = #fileID, line: UInt = #line) throws(AtomicContextViolation) {
        if let refused = Self.refusedInTask("RCUReadGuard.init()", file: file, line: line) { throw refused }
        self.init(unchecked: ())
    }

    /// Enters a read-side section without the task check: the closure forms' guard, whose
    /// section cannot span a suspension.
    @inlinable @inline(__always)
    package init(unchecked: Void) {
        // One thread-local load; written against the C storage directly so it inlines
        // into other packages too (ThreadState is `package`). Every state but plain
        // `registered` goes out of line: a first read lock, a thread unregistered by hand,
        // and a thread with reader preemption (`RCUThread.registeredFaulty`), so fault
        // injection adds nothing here.
        if _slowPath(unsafe CSupport_this_thread().pointee.rcu_registration != 1) {
            RCUThread.registerForReadLock()
        }
        CSupport_rcu_read_lock()
    }

    @inlinable @inline(__always)
    deinit { CSupport_rcu_read_unlock() }

    /// The refusal of a guard-form read section in a task, reported to the log in scope;
    /// nil outside a task.
    /// `section` and `owner` name what was refused (a Revocable's mutex guard passes its
    /// own); they are evaluated only for a report.
    @usableFromInline @inline(never)
    package static func refusedInTask(
        _ function: String,
        section: @autoclosure () -> String = "RCU read-side section",
        owner: @autoclosure () -> String = "liburcu's read lock belongs to the thread that takes it",
        log: KernelLog? = nil, file: StaticString, line: UInt
    ) -> AtomicContextViolation? {
        guard TaskContext.isInTask else { return nil }
        return AtomicContextViolation(report: AtomicContext.warn(
            .violation,
            [
                "BUG: irqemu: \(section()) started in a task: a suspension could move it to another thread",
                "\(owner()); use the closure form, which cannot suspend",
            ],
            function: function, log: log, file: "\(file)", line: line))
    }

    /// Ends the section before the end of the scope.
    @inlinable @inline(__always)
    public consuming func unlock() {}
}

@available(*, unavailable, message: "the RCU read lock belongs to the thread that took it")
extension RCUReadGuard: Sendable {}
