import KernelRuntime

extension RCU {
    /// Waits, suspended, for every read-side section that began before the call: the async
    /// `synchronize_rcu`. In async code `try await RCU.synchronize()` resolves here.
    ///
    /// No thread waits: the task is queued on the grace-period thread, which shares one
    /// grace period among every waiter that arrived (see `gracePeriodsShared`), and resumed
    /// from it. A cancelled task's call still waits for its grace period and returns
    /// normally.
    ///
    /// Returns `Void`, once a grace period that began after the call has ended.
    ///
    /// - Throws: `AtomicContextViolation` in atomic context, as the blocking call does
    ///   (a task never is: what makes a thread atomic is a synchronous scope); nothing was
    ///   waited for.
    /// - Complexity: With nothing else pending, one grace period and two thread wake-ups
    ///   (tens of µs). Under load (waiters arriving while grace periods run), grace periods
    ///   are batched: a wait may take up to forty times a recent grace period longer (at
    ///   most 100 ms), and a thousand waiters share a handful.
    public static func synchronize(log: KernelLog? = nil, file: StaticString = #fileID, line: UInt = #line) async throws(AtomicContextViolation) {
        try checkNotInReadSection("synchronize_rcu", "RCU.synchronize()", log: log, file: file, line: line)
        await afterGracePeriod()
    }

    /// Suspends until a grace period that began after the call has ended, shared with every
    /// other waiter. No check: for the layers above, which ran the checker.
    package static func afterGracePeriod() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            GracePeriodThread.shared.afterGracePeriod { continuation.resume() }
        }
    }

    /// Grace periods the grace-period thread has run for async waiters and runtime threads,
    /// each shared by every waiter of its batch. Included in `gracePeriodsWaited`.
    public static var gracePeriodsShared: UInt64 { GracePeriodThread.shared.gracePeriods }
}
