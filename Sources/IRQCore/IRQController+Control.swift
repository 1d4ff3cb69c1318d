import DeviceModel
import KernelRuntime
import RCU

extension IRQController {
    /// `disable_irq_nosync`: increments the line's disable depth; at 0→1 the line is marked
    /// disabled (the next interrupt masks it and, on an edge line, is kept pending). Does
    /// not wait: callable from a handler.
    public func disableIRQNoSync(_ irq: IRQNumber) throws(IRQError) {
        let descriptor = try core.descriptor(irq)
        descriptor.lock.withLock { descriptor.depth += 1 }
    }

    /// `disable_irq`: `disableIRQNoSync`, then waits for running handlers and threads of
    /// the line (`synchronizeIRQ`).
    ///
    /// - Throws: `atomicContext` from a handler or read-side section; `wouldDeadlock` from
    ///   the line's own threaded handler. Nothing changed.
    @available(*, noasync, message: "waits for running handlers")
    public func disableIRQ(_ irq: IRQNumber, file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        let descriptor = try core.descriptor(irq)
        try core.checkMaySleep(descriptor, "disable_irq", file: "\(file)", line: line)
        descriptor.lock.withLock { descriptor.depth += 1 }
        descriptor.noteThreadWaits(function: "disable_irq", file: "\(file)", line: line)
        _ = descriptor.waitForHandlers()
    }

    /// `enable_irq`: decrements the disable depth; at 1→0 unmasks the line (even while a
    /// ONESHOT thread is pending: a still-asserted level line then fires again, and its
    /// flow masks it again), starts a NO_AUTOEN line, and replays one coalesced pending
    /// edge (asynchronously, on the line's CPU). Callable from a handler.
    ///
    /// - Throws: `unbalancedEnable` at depth 0 (the kernel's `Unbalanced enable for IRQ N`
    ///   warning; depth stays 0), `notSetUp` before any request.
    public func enableIRQ(_ irq: IRQNumber, file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        let descriptor = try core.descriptor(irq)
        let outcome = descriptor.lock.withLock { () -> IRQError? in
            guard descriptor.everSetUp else { return .notSetUp(irq: irq) }
            guard descriptor.depth > 0 else { return .unbalancedEnable(irq: irq) }
            descriptor.enableLocked()
            return nil
        }
        switch outcome {
        case .notSetUp?:
            AtomicContext.warn(.warning, ["WARNING: enable_irq before setup/request_irq: irq \(irq)"],
                               function: "enable_irq", log: log, file: "\(file)", line: line)
        case .unbalancedEnable?:
            AtomicContext.warn(.warning, ["WARNING: Unbalanced enable for IRQ \(irq)"],
                               function: "enable_irq", log: log, file: "\(file)", line: line)
        default: break
        }
        if let outcome { throw outcome }
    }

    /// `synchronize_irq`: waits until no primary handler of the line runs, then until no
    /// thread of the line is active.
    ///
    /// - Throws: `atomicContext` from a handler or read-side section; `wouldDeadlock` from
    ///   the line's own threaded handler.
    @available(*, noasync, message: "waits for running handlers")
    public func synchronizeIRQ(_ irq: IRQNumber, file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        let descriptor = try core.descriptor(irq)
        try core.checkMaySleep(descriptor, "synchronize_irq", file: "\(file)", line: line)
        descriptor.noteThreadWaits(function: "synchronize_irq", file: "\(file)", line: line)
        _ = descriptor.waitForHandlers()
    }

    /// The line's disable depth (0: enabled).
    public func depth(of irq: IRQNumber) throws(IRQError) -> Int {
        let descriptor = try core.descriptor(irq)
        return descriptor.lock.withLock { descriptor.depth }
    }
}

extension IRQDescriptor {
    /// `__enable_irq` at depth ≥ 1; at 1→0 unmasks unconditionally, as `irq_enable` does.
    /// Lock held.
    func enableLocked() {
        guard depth > 0 else { return }
        depth -= 1
        guard depth == 0 else { return }
        let replay = pending && !isLevel
        pending = false
        // Edges that arrived while masked fold into the one replayed edge.
        if replay {
            raised &+= source.acknowledge()
            softPending.store(false, ordering: .sequentiallyConsistent)
        }
        unmask()
        if replay { scheduleReplay() }
    }
}
