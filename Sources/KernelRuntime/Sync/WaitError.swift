import SystemPackage

/// Why a wait of the kernel runtime did not complete: a `KThread` join, a `Completion`, a
/// `Reaper` flush. Each case changed nothing.
public enum WaitError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The timeout passed first (see `Deadline` for the timeout policy).
    case timedOut(operation: String, after: Duration)
    /// A sleeping call in atomic context, reported and refused.
    case atomicContext(AtomicContextViolation)
    /// The wait could end only after the calling thread returns (a thread joining itself,
    /// work flushing its own queue): reported and refused. Kernel: a deadlock.
    case wouldDeadlock(reason: String)

    /// The errno the kernel would return.
    public var errno: Errno {
        switch self {
        case .timedOut: .timedOut
        case .atomicContext: .invalidArgument
        case .wouldDeadlock: .deadlock
        }
    }

    /// The message, naming the operation and ending with the errno, e.g. `OPERATION: timed out after DURATION (ETIMEDOUT)`.
    public var description: String {
        switch self {
        case .timedOut(let operation, let after): "\(operation): timed out after \(after) (ETIMEDOUT)"
        case .atomicContext(let violation): violation.report.headline
        case .wouldDeadlock(let reason): "\(reason) (EDEADLK)"
        }
    }
}
