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
/// - Important: Bind the guard to a name (`let held = RCUReadGuard()`); `_ = RCUReadGuard()`
///   ends the section at once. It belongs to the thread that took it and is not `Sendable`.
public struct RCUReadGuard: ~Copyable {
    /// Enters a read-side section, registering the thread with liburcu on first use.
    @inlinable @inline(__always)
    public init() {
        // One thread-local load; written against the C storage directly so it inlines
        // into other packages too (ThreadState is `package`).
        if _slowPath(unsafe CSupport_this_thread().pointee.rcu_registration != 1) {
            RCUThread.registerForReadLock()
        }
        CSupport_rcu_read_lock()
    }

    @inlinable @inline(__always)
    deinit { CSupport_rcu_read_unlock() }

    /// Ends the section before the end of the scope.
    @inlinable @inline(__always)
    public consuming func unlock() {}
}

@available(*, unavailable, message: "the RCU read lock belongs to the thread that took it")
extension RCUReadGuard: Sendable {}
