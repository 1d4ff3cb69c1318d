import KernelRuntime
import RCU

extension Revocable {
    /// Revokes the value, suspended, with every guarantee of the blocking `revoke()`: no
    /// reader gets the value once it returns, the value is dropped exactly once, and every
    /// call returns only once the value is gone. In async code `try await r.revoke()`
    /// resolves here.
    ///
    /// No thread of the concurrency pool waits:
    /// - RCU: the flag flips on the calling task, so no new reader gets the value; the task
    ///   is queued on the grace-period thread, which shares one grace period among every
    ///   waiter that arrived (10,000 concurrent revokes cost a handful); after it, a
    ///   runtime worker drops the value in process context and resumes the task.
    /// - Mutex: the winner is decided on the calling task (one compare-and-swap, which keeps
    ///   new readers off); a runtime worker takes the lock, waiting there for a reader that
    ///   holds it, drops the value outside it, and resumes the task.
    /// - A losing call returns at once if the value is already dropped; otherwise a worker
    ///   waits for the winner's drop and resumes it.
    ///
    /// The value's deinit runs on a runtime worker thread, with the log that was in scope
    /// on the calling thread. Cancelling the task cancels nothing: a cancelled task's call
    /// still waits for the drop and returns normally, so the release is never left half
    /// done.
    ///
    /// - Returns: `Bool`: `true` for the one call that revoked the value, `false` for every
    ///   other; either way only once the value has been dropped.
    /// - Throws: As the blocking `revoke()`: `AtomicContextViolation` in atomic context, or
    ///   (mutex) inside this Revocable's own access; nothing was revoked.
    /// - Complexity: RCU: with nothing else pending, one grace period and three thread
    ///   wake-ups; under a stream of revokes the grace periods are batched (see
    ///   `RCU.synchronize()`'s async overload). Mutex: one hand-off to a worker.
    @discardableResult
    public func revoke(file: StaticString = #fileID, line: UInt = #line) async throws(AtomicContextViolation) -> Bool {
        try AtomicContext.mightSleep("Revocable.revoke()", file: file, line: line)
        let log = KernelLog.current
        if strategy == .mutex {
            if let refused = recursiveLockReported("Revocable.revoke()", log: nil, file: file, line: line) { throw refused }
            if mutexUnpublish() {
                await BlockingPool.shared.run { self.mutexDrop() }
                return true
            }
        } else if unpublish() {
            // A checked continuation: an unsafe one's resume is inlined here, and
            // ThreadSanitizer cannot see its hand-off to the resumed task (in the runtime).
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                GracePeriodThread.shared.workAfterGracePeriod {
                    KernelLog.withCurrent(log) { _ = self.dropValue() }
                    continuation.resume()
                }
            }
            return true
        }
        if drop.load(ordering: .acquiring) == Self.dropped { return false }
        await BlockingPool.shared.run { self.waitForWinner(file: file, line: line) }
        return false
    }
}
