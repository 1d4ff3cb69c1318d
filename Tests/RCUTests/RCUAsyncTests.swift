import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

/// The async `RCU.synchronize()`: it waits for readers that began before it, shares grace
/// periods, is resumed from the grace-period thread, and cannot be left half done by a
/// cancellation. And the guard-form read section, refused in a task.
@Suite(.timeLimit(.minutes(2)))
struct RCUAsyncTests {
    /// A reader holding its section holds the await off; the await returns once it leaves.
    /// (The reader lets go by itself after 50 ms: a section held until a task runs would
    /// hold every grace period of the process hostage to the pool.)
    @Test func anAwaitWaitsForAReaderThatBeganBefore() async throws {
        let gate = Gate("reader", holdAtMost: .milliseconds(50))
        let reader = try KThread(name: "held-reader") { RCU.read { gate.pass() } }
        #expect(await gate.reached())
        let before = RCU.gracePeriodsShared
        try await RCU.synchronize()
        #expect(gate.passed == 1, "the grace period ended while a reader that began before it held its section")
        #expect(RCU.gracePeriodsShared > before)
        try await reader.join()
    }

    /// Concurrent awaits share grace periods: a thousand cost a handful (each grace period
    /// here lasts while a reader holds it off, so nearly all of them share one).
    @Test func concurrentAwaitsShareGracePeriods() async throws {
        let gate = Gate("reader", holdAtMost: .milliseconds(30))
        let reader = try KThread(name: "held-reader") { RCU.read { gate.pass() } }
        #expect(await gate.reached())
        let before = RCU.gracePeriodsShared
        let count = 1_000
        let early = AtomicCounter()
        try await withThrowingDiscardingTaskGroup { group in
            for _ in 0..<count {
                group.addTask {
                    try await RCU.synchronize()
                    if gate.passed == 0 { early.increment() }
                }
            }
        }
        #expect(early.value == 0, "an await returned while the reader held its section")
        // Other suites' awaits may share the thread meanwhile: a loose bound, far from 1,000.
        let used = RCU.gracePeriodsShared - before
        #expect(used <= 100, "\(count) concurrent awaits used \(used) grace periods")
        try await reader.join()
    }

    /// Sequential awaits with nothing else pending are never held back to batch: each starts
    /// its grace period at once (liburcu's call_rcu sleeps 10 ms a batch: a hundred would
    /// take a second). On a grace-period thread of their own, so that other suites' awaits
    /// do not share it; checked by what the thread did, not by time (a grace period lasts as
    /// long as the slowest reader of the whole process takes, and other suites run readers).
    @Test func sequentialAwaitsAreNotHeldBack() async throws {
        let thread = GracePeriodThread()
        for _ in 0..<100 {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                thread.afterGracePeriod { continuation.resume() }
            }
        }
        #expect(thread.gracePeriods == 100, "one grace period each")
        #expect(thread.gatheredBatches == 0, "none was held back to gather a batch")
    }

    /// A burst of concurrent waiters shares grace periods even when nothing holds them off
    /// (each grace period then lasts a few microseconds): on a thread of their own, 2,000
    /// waiters use far fewer than 2,000.
    @Test func aBurstSharesGracePeriodsWithNoReaders() async throws {
        let thread = GracePeriodThread()
        let count = 2_000
        await withDiscardingTaskGroup { group in
            for _ in 0..<count {
                group.addTask {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        thread.afterGracePeriod { continuation.resume() }
                    }
                }
            }
        }
        #expect(thread.waiters == UInt64(count))
        #expect(thread.gracePeriods <= 200, "\(count) waiters used \(thread.gracePeriods) grace periods")
    }

    /// A cancelled task's await still waits for its grace period and returns normally.
    @Test func aCancelledAwaitStillWaitsAndReturns() async throws {
        let gate = Gate("reader", holdAtMost: .milliseconds(30))
        let reader = try KThread(name: "held-reader") { RCU.read { gate.pass() } }
        #expect(await gate.reached())
        let waiter = Task {
            try await RCU.synchronize()
            return gate.passed == 1
        }
        waiter.cancel()
        #expect(try await waiter.value, "a cancelled await returned before its grace period")
        try await reader.join()
    }

    /// The guard form in a task is reported and refused; the closure form works there, and
    /// the guard form works on a thread.
    @Test func aGuardFormSectionInATaskIsRefused() async throws {
        let log = KernelLog(name: "task")
        let refused = KernelLog.withCurrent(log) { () -> AtomicContextViolation? in
            do throws(AtomicContextViolation) {
                _ = try RCUReadGuard()
                return nil
            } catch {
                return error
            }
        }
        let violation = try #require(refused)
        #expect(violation.report.kind == KernelReport.Kind.violation)
        #expect(violation.report.headline.hasPrefix(
            "BUG: irqemu: RCU read-side section started in a task: a suspension could move it to another thread"))
        #expect(log.reports.count == 1)
        #expect(!RCU.isReadLocked, "no section was entered")
        #expect(RCU.read { RCU.isReadLocked }, "the closure form works in a task")
        let onThread = Threads.onThread { () -> Bool in
            guard let held = try? RCUReadGuard() else { return false }
            let locked = RCU.isReadLocked
            _ = consume held
            return locked
        }
        #expect(onThread == true, "the guard form works on a thread")
    }
}
