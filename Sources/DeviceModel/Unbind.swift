import KernelRuntime
import RCU

/// How `Device.unbind` releases the device's RCU Devres.
public enum UnbindMode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Danilo Krummrich's plan: flip every Devres' flag, wait ONE grace period, then drop
    /// every value newest first. Not in the kernel as of mid-2026.
    case batched
    /// What the kernel does: each Devres, newest first, flips its flag, waits its own grace
    /// period and drops its value.
    case perObject

    /// `batched` or `per-object`.
    public var description: String {
        switch self {
        case .batched: "batched"
        case .perObject: "per-object"
        }
    }
}

/// What one `Device.unbind` (or a failed probe's cleanup) did.
public struct UnbindReport: Sendable, Hashable, CustomStringConvertible {
    /// The device's name.
    public let device: String
    /// How its RCU Devres were released.
    public let mode: UnbindMode
    /// Resources released (Devres values and release actions).
    public let released: Int
    /// Grace periods the unbind waited for, counted on the unbinding thread.
    public let gracePeriods: UInt64
    /// Wall time of the whole unbind, `remove` included.
    public let duration: Duration

    /// One line: `unbind NAME [MODE]: N released, G grace period(s), T ms`.
    public var description: String {
        "unbind \(device) [\(mode)]: \(released) released, \(gracePeriods) grace period(s), \(duration.seconds * 1e3) ms"
    }
}

// MARK: - Unbind and the release algorithm

extension Device {
    /// Unbinds the driver: waits for `withBound` holders on other threads, runs `remove`,
    /// then releases every resource, newest first (`mode` says how RCU Devres are
    /// released).
    ///
    /// When it returns, every Devres of the device is revoked and dropped, every release
    /// action has run, and every IRQ the driver requested is freed, even if the Devres or
    /// Registration objects are still referenced elsewhere.
    ///
    /// - Returns: What was released and how many grace periods it took.
    /// - Throws: `notBound` (unbind of an unbound device), `wouldDeadlock` (from inside
    ///   `withBound` or a driver callback of this device), or `atomicContext`. The device is
    ///   unchanged.
    @available(*, noasync, message: "waits for grace periods and for running handlers")
    @discardableResult
    public func unbind(
        mode: UnbindMode = .batched, file: StaticString = #fileID, line: UInt = #line
    ) throws(DeviceError) -> UnbindReport {
        try mightSleep("Device.unbind(mode:)", file: file, line: line)
        return try unbindNow(mode: mode, start: monotonicNanoseconds(), file: file, line: line) { RCU.synchronizeUnchecked() }
    }

    /// The unbind, on the calling thread, waiting for each grace period with `gracePeriod`
    /// (counted in the thread's `gracePeriodsWaitedByCurrentThread`, which the report takes
    /// its count from). `start` is when the caller was called; `file` and `line` its site.
    func unbindNow(
        mode: UnbindMode, start: UInt64, file: StaticString, line: UInt, gracePeriod: () -> Void
    ) throws(DeviceError) -> UnbindReport {
        let gracePeriods = RCU.gracePeriodsWaitedByCurrentThread
        let tid = ThreadState.tid
        let driver = try lock.withLock { () throws(DeviceError) -> any Driver in
            if holders[tid] != nil {
                throw .wouldDeadlock(device: name, reason: "unbind inside withBound of the same device")
            }
            guard state == .bound else {
                if callbackThread == tid {
                    throw .wouldDeadlock(device: name, reason: "unbind from the device's own probe, remove or release")
                }
                throw .notBound(device: name, operation: "unbind")
            }
            state = .removing
            callbackThread = tid
            // The lock validator: unbind waits for `withBound` and `access(_:)` bodies (here,
            // and for accessors when it releases each Devres). Not on a thread inside such a
            // body of this device: that unbind does not wait for it (deferred, reported).
            if !Lockdep.holds(boundMap) {
                Lockdep.noteWait(for: boundMap, function: "Device.unbind", file: "\(file)", line: line, log: log)
            }
            _ = lock.waitLocked { holders.isEmpty }
            return self.driver!
        }
        // The driver's remove and the release of its resources report to this device's log.
        let released = inScope {
            driver.remove(Bound(self))
            return releaseAll(mode: mode, gracePeriod: gracePeriod)
        }
        reportLeaks(after: "its unbind")
        lock.withLock {
            state = .unbound
            self.driver = nil
            callbackThread = 0
        }
        return UnbindReport(
            device: name, mode: mode, released: released,
            gracePeriods: RCU.gracePeriodsWaitedByCurrentThread &- gracePeriods,
            duration: .nanoseconds(Int64(monotonicNanoseconds() &- start)))
    }

    /// The release algorithm, for unbind and for a failed probe. Takes the whole list (so a
    /// concurrent Devres drop finds its node gone and waits for the claim), then releases
    /// newest first:
    /// - `.batched`: stage 1 unpublishes every RCU Devres (flips its flag), stage 2 waits
    ///   one grace period if any flag flipped, stage 3 releases every node newest first.
    /// - `.perObject`: each node, newest first, unpublishes, waits its own grace period and
    ///   is released.
    /// Mutex-strategy Devres and release actions need no grace period: they are released
    /// in their place in both modes. Each grace period is waited for with `gracePeriod`.
    /// Returns how many nodes it released.
    func releaseAll(mode: UnbindMode, gracePeriod: () -> Void = { RCU.synchronizeUnchecked() }) -> Int {
        let nodes = lock.withLock { () -> [DevresNode] in
            state = .releasing
            return takeList()
        }
        switch mode {
        case .batched:
            var flipped = false
            for node in nodes where node.needsGracePeriod {
                if node.unpublish() { flipped = true }
            }
            if flipped { gracePeriod() }
            for (i, node) in nodes.enumerated() {
                node.releaseOrWait()
                interruptRemaining(nodes[(i + 1)...])
            }
        case .perObject:
            for (i, node) in nodes.enumerated() {
                if node.needsGracePeriod, node.unpublish() { gracePeriod() }
                node.releaseOrWait()
                interruptRemaining(nodes[(i + 1)...])
            }
        }
        // Drops that unlinked their resource just before we took the list (on other threads:
        // one on this thread is the caller, further up the stack).
        let tid = ThreadState.tid
        _ = lock.wait { dropsInFlight.keys.allSatisfy { $0 == tid } }
        return nodes.count
    }

    /// `Faults.interruptsDuringUnbind`: after a release step, each IRQ the device still has
    /// requested is raised and its handlers waited for, so a handler that reads what the
    /// step released is caught now rather than when the timing happens to hit.
    private func interruptRemaining(_ remaining: ArraySlice<DevresNode>) {
        guard FaultInjection.current(fallback: faults).interruptsDuringUnbind else { return }
        for node in remaining { node.interruptForFaultInjection() }
    }
}
