import DeviceModel
import KernelRuntime
import RCU

extension IRQController {
    /// Waits until every interrupt raised before the call has been delivered and every
    /// thread it woke has finished, so a harness can write `raise`, `quiesce`, assert, with
    /// no sleeps. Periodic timer lines are not waited for.
    ///
    /// With `includingThreads: false` it waits only until the primary handlers are done: a
    /// test that holds a threaded handler in its run can still wait for the CPUs to have
    /// taken (or masked) what it raised.
    ///
    /// "Delivered" means handled, or recorded as pending on a disabled line. A level line
    /// that stays asserted keeps firing: deassert it first.
    ///
    /// - Throws: `atomicContext` (it sleeps); `wouldDeadlock` (EDEADLK) from a line's own
    ///   threaded handler, which it would wait for; `shutDown` after `shutdown()`; all at
    ///   once. `timedOut` once `timeout` has passed (see `Deadline` for the policy).
    @available(*, noasync, message: "waits for the dispatchers")
    public func quiesce(
        includingThreads: Bool = true, timeout: Duration? = .seconds(10), file: StaticString = #fileID, line: UInt = #line
    ) throws(IRQError) {
        if AtomicContext.isAtomic {
            throw .atomicContext(AtomicContext.sleepingCallReported(
                "IRQController.quiesce(timeout:)", log: log, file: "\(file)", line: line))
        }
        guard !core.hasShutDown else { throw .shutDown }
        if includingThreads, let own = IRQThread.current?.descriptor, core.allDescriptors.contains(where: { $0 === own }) {
            try core.checkMaySleep(own, "quiesce", file: "\(file)", line: line)
        }
        let deadline = Deadline.after(timeout)
        let after = timeout ?? .zero
        // Nothing raised and not yet delivered, nothing running: quiescent without asking the
        // CPUs (so a zero timeout, which checks once, can succeed).
        if core.isQuiescent(includingThreads: includingThreads) { return }
        while true {
            for dispatcher in core.dispatchers where !dispatcher.barrier(until: deadline) {
                throw .timedOut(operation: "quiesce: CPU \(dispatcher.index) finishing its interrupts", after: after)
            }
            var busy = false
            for descriptor in core.allDescriptors where !descriptor.source.isPeriodic {
                let idle = includingThreads ? descriptor.waitForHandlers(until: deadline) : descriptor.waitForPrimaryHandlers(until: deadline)
                if !idle {
                    throw .timedOut(operation: "quiesce: irq \(descriptor.irq) handlers finishing", after: after)
                }
                // A raise held at a masked line counts as delivered (it is pending there); one
                // at a shut-down line is delivered once counted as spurious.
                let armed = descriptor.lock.withLock { descriptor.watchesSource }
                if descriptor.replayPending.load(ordering: .acquiring) { busy = true }
                if armed && descriptor.softPending.load(ordering: .acquiring) { busy = true }
                if armed && descriptor.source.hasPendingInput() { busy = true }
            }
            if !busy { return }
            if deadline.hasPassed { throw .timedOut(operation: "quiesce: interrupts still arriving", after: after) }
        }
    }
}

extension ControllerCore {
    /// Whether every line is idle now: no software raise or replay waiting for its CPU, no
    /// unread input at a source, no CPU handling what it took, no primary handler (or, with
    /// `includingThreads`, threaded handler) running. Periodic sources excepted.
    func isQuiescent(includingThreads: Bool) -> Bool {
        // In this order: input not on its line any more was taken by a CPU, which marked
        // itself in a pass before reading it and stays so until the handler returned. A
        // software raise or replay is pending on its line until a CPU's pass takes it; a
        // kick with neither (a barrier, a coalesced raise already taken) delivers nothing.
        for descriptor in allDescriptors where !descriptor.source.isPeriodic {
            if descriptor.replayPending.load(ordering: .acquiring) { return false }
            let armed = descriptor.lock.withLock { descriptor.watchesSource }
            if armed && descriptor.softPending.load(ordering: .acquiring) { return false }
            if descriptor.source.hasPendingInput() { return false }
        }
        guard dispatchers.allSatisfy({ !$0.isInPass }) else { return false }
        for descriptor in allDescriptors where !descriptor.source.isPeriodic {
            let idle = descriptor.lock.withLock { () -> Bool in
                !descriptor.inProgress && (!includingThreads || descriptor.threadsActive == 0)
            }
            if !idle { return false }
        }
        return true
    }
}
