extension KThread {
    /// `join(timeout:)` for async code: waits, suspended, for the thread to finish. The
    /// join runs on a runtime worker thread; no thread of the concurrency pool waits. A
    /// cancelled task's call still waits and returns normally.
    ///
    /// Returns `Void`, once the thread has finished and was joined.
    ///
    /// - Throws: `timedOut`; the thread was not joined.
    public func join(timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line) async throws(WaitError) {
        try await BlockingPool.shared.run { () throws(WaitError) in try self.join(timeout: timeout, file: file, line: line) }
    }
}
