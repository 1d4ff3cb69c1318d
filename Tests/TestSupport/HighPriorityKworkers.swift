import Synchronization
import Testing

/// Runs the test cases that hold a high-priority kworker in a work item's run one at a time,
/// across suites.
///
/// A per-CPU pool has a fixed number of workers (two by default) and every queue shares
/// them: two suites that each hold a run of a `.highPri` queue could leave a third with no
/// worker, and its item would wait past its deadline. The wait for the turn suspends the
/// task (no thread of the concurrency pool waits: the no-parked-pool-thread tests hold one).
public struct HighPriorityKworkers: SuiteTrait, TestTrait, TestScoping {
    private static let turn = AsyncTurn()

    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // Recursive: called for each test case (a parameterized test's cases take turns one
        // by one). Time spent waiting for the turn counts against the test's time limit.
        await Self.turn.acquire()
        defer { Self.turn.release() }
        try await function()
    }
}

/// How long a gate holds a kworker's run at most. Long: the tests take turns for the
/// high-priority kworkers, and the task that opens a gate may wait for a thread of the
/// concurrency pool while other suites' synchronous tests occupy it (tens of seconds under
/// `--repetitions`); a gate that opened itself first would let the run go on early.
public let kworkerHold = Duration.seconds(100)

extension Trait where Self == HighPriorityKworkers {
    /// The test holds a high-priority kworker in a run: it takes its turn (see
    /// `HighPriorityKworkers`).
    public static var holdsHighPriorityKworkers: Self { HighPriorityKworkers() }
}

/// A first-come, first-served turn that suspends the waiting task.
final class AsyncTurn: Sendable {
    private let state = Mutex<(held: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if !state.held {
                    state.held = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.held = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
