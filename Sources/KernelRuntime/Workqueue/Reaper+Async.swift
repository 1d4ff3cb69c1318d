extension Reaper {
    /// `flush(timeout:)` for async code: waits, suspended, until everything queued before
    /// the call has run, up to `timeout` (see `Deadline` for the policy). Teardowns a task
    /// handed over (the last reference to a `Devres`, a registration or a controller dropped
    /// in a task) are finished once this returns.
    ///
    /// The wait runs on a runtime worker thread; no thread of the concurrency pool waits. A
    /// cancelled task's call still waits and returns normally.
    ///
    /// Returns `Void`, once the work queued before the call has run.
    ///
    /// - Throws: `timedOut`; nothing is undone, the work still runs.
    public func flush(timeout: Duration? = .seconds(10), file: StaticString = #fileID, line: UInt = #line) async throws(WaitError) {
        try await BlockingPool.shared.run { () throws(WaitError) in
            try self.flush(timeout: timeout, file: file, line: line)
        }
    }
}
