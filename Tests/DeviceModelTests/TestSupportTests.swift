import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

/// The test helpers themselves: a thread that misses its deadline fails the test (an
/// issue on the caller's task), it does not crash the process or hang the run.
@Suite(.timeLimit(.minutes(1)))
struct TestSupportTests {
    @Test func aThreadThatMissesItsDeadlineIsRecordedNotFatal() {
        let released = Atomic<Bool>(false)
        var finished = true
        withKnownIssue("the late thread is recorded as a failure") {
            finished = Threads.run(2, name: "late", timeout: .milliseconds(200)) { index in
                // Thread 1 is "stuck" until released (bounded, so it never outlives the run).
                let deadline = Deadline.after(.seconds(10))
                while index == 1 && !released.load(ordering: .acquiring) && !deadline.hasPassed { usleep(1_000) }
            }
        }
        released.store(true, ordering: .releasing)
        #expect(!finished, "run reported that every thread finished")
    }

    @Test func onThreadThatMissesItsDeadlineReturnsNilAndIsRecorded() {
        let released = Atomic<Bool>(false)
        var result: Int? = 0
        withKnownIssue("the late thread is recorded as a failure") {
            result = Threads.onThread(name: "late", timeout: .milliseconds(200)) { () -> Int in
                let deadline = Deadline.after(.seconds(10))
                while !released.load(ordering: .acquiring) && !deadline.hasPassed { usleep(1_000) }
                return 1
            }
        }
        released.store(true, ordering: .releasing)
        #expect(result == nil)
    }

    /// An error thrown on the thread (a failed bind in a test's setup, say) comes back to
    /// the caller's task, typed, instead of trapping the process as `try!` would.
    @Test func onThreadRethrowsTheBodysErrorOnTheCallersTask() {
        struct SetupFailed: Error, Equatable { let step: Int }
        #expect(throws: SetupFailed(step: 3)) {
            _ = try Threads.onThread { () throws(SetupFailed) -> Int in throw SetupFailed(step: 3) }
        }
        #expect(Threads.onThread { 42 } == 42, "a body that cannot throw needs no try")
    }
}
