import Foundation
import KernelRuntime

/// Runs the tests that need the lock validator's process-wide state one at a time, each
/// from a clean validator: reset (classes, dependencies, chains, reported problems) to the
/// given limits before, and back to the kernel's limits, enabled, after.
///
/// A problem is reported once per process and a known chain is never validated again, so
/// a test that expects a report must start clean, or it would pass only on its first run
/// in a process. Other tests run alongside: a reset only makes the validator forget what
/// they recorded.
public enum LockdepGate {
    private static let lock = NSLock()

    public static func run<R>(limits: Lockdep.Limits = .kernel, _ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        Lockdep.reset(limits: limits)
        defer {
            Lockdep.isEnabled = true
            Lockdep.reset()
        }
        return try body()
    }
}
