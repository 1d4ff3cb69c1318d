import DeviceModel
import KernelRuntime

/// The async overloads of the request_irq family's sleeping calls. Each checks on the
/// calling task what it can without waiting (the line exists, the context may sleep), then
/// hands the waits to a runtime worker thread, which resumes the task: no thread of
/// Swift's concurrency pool ever waits for a handler. In async code `try await
/// controller.freeIRQ(irq)` resolves here.
///
/// Cancelling the task cancels nothing: a cancelled task's call still completes (the
/// action is freed, the handlers are waited for) and returns normally.
extension IRQController {
    /// `free_irq`, suspended: as the blocking `freeIRQ(_:devID:)`, the action's handler and
    /// thread never run again once it returns.
    ///
    /// - Returns: `String`: the name given at request.
    /// - Throws: As the blocking `freeIRQ(_:devID:)`: `alreadyFree`, `atomicContext`,
    ///   `invalidArgument`, `shutDown`; nothing changed.
    @discardableResult
    public func freeIRQ(
        _ irq: IRQNumber, devID: AnyObject? = nil, file: StaticString = #fileID, line: UInt = #line
    ) async throws(IRQError) -> String {
        let descriptor = try core.descriptor(irq)
        try core.checkMaySleep(descriptor, "free_irq", file: "\(file)", line: line)
        let core = self.core, token = DevIDReference(devID)
        return try await BlockingPool.shared.run { () throws(IRQError) -> String in
            try core.free(
                descriptor, devID: token.object, function: "free_irq", file: "\(file)", line: line, warnIfMissing: true)
        }
    }

    /// `synchronize_irq`, suspended: returns once no primary handler of the line runs and
    /// no thread of the line is active.
    ///
    /// Returns `Void`.
    ///
    /// - Throws: As the blocking `synchronizeIRQ(_:)`.
    public func synchronizeIRQ(_ irq: IRQNumber, file: StaticString = #fileID, line: UInt = #line) async throws(IRQError) {
        let descriptor = try core.descriptor(irq)
        try core.checkMaySleep(descriptor, "synchronize_irq", file: "\(file)", line: line)
        await BlockingPool.shared.run { _ = descriptor.waitForHandlers() }
    }

    /// `disable_irq`, suspended: the disable depth is incremented at once, on the calling
    /// task; the call returns once the line's running handlers and threads have finished.
    ///
    /// Returns `Void`.
    ///
    /// - Throws: As the blocking `disableIRQ(_:)`; nothing changed.
    public func disableIRQ(_ irq: IRQNumber, file: StaticString = #fileID, line: UInt = #line) async throws(IRQError) {
        let descriptor = try core.descriptor(irq)
        try core.checkMaySleep(descriptor, "disable_irq", file: "\(file)", line: line)
        descriptor.lock.withLock { descriptor.depth += 1 }
        await BlockingPool.shared.run { _ = descriptor.waitForHandlers() }
    }

    /// `quiesce(includingThreads:timeout:)`, suspended: returns once every interrupt raised
    /// before the call has been delivered (and, with `includingThreads`, every thread it
    /// woke has finished).
    ///
    /// Returns `Void`.
    ///
    /// - Throws: As the blocking `quiesce(includingThreads:timeout:)`; `timedOut` once
    ///   `timeout` has passed, counted from the call.
    public func quiesce(
        includingThreads: Bool = true, timeout: Duration? = .seconds(10), file: StaticString = #fileID, line: UInt = #line
    ) async throws(IRQError) {
        if AtomicContext.isAtomic {
            throw .atomicContext(AtomicContext.sleepingCallReported(
                "IRQController.quiesce(timeout:)", log: log, file: "\(file)", line: line))
        }
        guard !core.hasShutDown else { throw .shutDown }
        let deadline = Deadline.after(timeout)
        try await BlockingPool.shared.run { () throws(IRQError) in
            do throws(IRQError) {
                try self.quiesce(includingThreads: includingThreads, timeout: deadline.remaining, file: file, line: line)
            } catch .timedOut(let operation, _) {
                throw .timedOut(operation: operation, after: timeout ?? .zero)
            }
        }
    }

    /// Shuts the controller down, suspended: as the blocking `shutdown()`, every line's
    /// actions are freed and the CPUs stopped when it returns.
    ///
    /// Returns `Void`.
    ///
    public func shutdown(file: StaticString = #fileID, line: UInt = #line) async {
        let core = self.core
        await BlockingPool.shared.run { core.shutdown(function: "IRQController.shutdown()", file: file, line: line) }
    }
}

/// A `dev_id` handed to a worker thread. The object is only compared by identity
/// (`===`), never used, so sharing the reference is safe whatever its type.
private struct DevIDReference: @unchecked Sendable {
    let object: AnyObject?
    init(_ object: AnyObject?) { self.object = object }
}
