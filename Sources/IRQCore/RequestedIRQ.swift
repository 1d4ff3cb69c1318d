import DeviceModel
import KernelRuntime
import Synchronization

/// The requested IRQ behind a registration: upstream's `RegistrationInner`, whose drop
/// calls free_irq. A registration holds it in a `Devres`: releasing the Devres (at unbind,
/// or when the registration is dropped) frees the IRQ, exactly once.
///
/// Internal: only its registration reaches it, so dropping the registration, unbinding its
/// device or shutting its controller down are the only ways its IRQ goes away.
final class RequestedIRQ: ReleasableResource, InterruptingResource {
    let core: ControllerCore
    let irq: IRQNumber
    let descriptor: IRQDescriptor
    let log: KernelLog
    /// The `dev_id` the action is requested under: a token of its own, so the action holds
    /// no reference back to this object (which would keep it alive).
    let devID = DevIDToken()
    /// Set once the request succeeded; cleared by the one release that frees the IRQ.
    private let requested = Atomic<Bool>(false)

    init(controller: IRQController, irq: IRQNumber, log: KernelLog) throws(IRQError) {
        core = controller.core
        self.irq = irq
        descriptor = try controller.core.descriptor(irq)
        self.log = log
    }

    /// Arms the release: called once the IRQ was requested under `devID`. Until then
    /// (a failed request) releasing frees nothing.
    func markRequested() { requested.store(true, ordering: .releasing) }

    /// Whether the IRQ is still requested (its free has not begun).
    var isRequested: Bool { requested.load(ordering: .acquiring) }

    /// `synchronize_irq` on the line.
    func synchronize(file: StaticString, line: UInt) throws(IRQError) {
        try core.checkMaySleep(descriptor, "synchronize_irq", file: "\(file)", line: line)
        descriptor.noteThreadWaits(function: "synchronize_irq", file: "\(file)", line: line)
        _ = descriptor.waitForHandlers()
    }

    /// `Faults.interruptsDuringUnbind`: raises the line (a software raise, whatever its
    /// source) and waits, a second at most, for the CPU to take it and the handlers to
    /// finish. Process context, on the unbinding thread.
    func raiseAndWaitForHandlers() {
        guard isRequested else { return }
        descriptor.softwareRaise()
        let deadline = Deadline.after(.seconds(1))
        _ = descriptor.dispatcher.barrier(until: deadline)
        _ = descriptor.waitForHandlers(until: deadline)
    }

    /// Frees the IRQ (called by the Devres release; also by `deinit` if it never ran), once,
    /// and only if it was requested.
    func releaseResource() {
        guard requested.exchange(false, ordering: .acquiringAndReleasing) else { return }
        if AtomicContext.isAtomic || descriptor.calledFromOwnThread {
            // free_irq would sleep here (or wait for this very thread): unlink now so the
            // handler never starts again, and let the reaper do the waiting.
            if core.detachForDeferredFree(descriptor, devID: devID) {
                reportDeferredFree(core: core, descriptor: descriptor, log: log)
            }
            let core = self.core, descriptor = self.descriptor, devID = self.devID
            Reaper.shared.schedule("free_irq(\(irq))") { core.finishDetachedFree(descriptor, devID: devID) }
        } else {
            _ = try? core.free(descriptor, devID: devID, function: "free_irq", file: #fileID, line: #line, warnIfMissing: true)
        }
    }

    deinit { releaseResource() }
}

/// A `dev_id`: an identity and nothing else.
final class DevIDToken: Sendable {}

/// Reports a free_irq that had to be deferred: the sleeping-call BUG in atomic context, or
/// the self-wait warning on the line's own thread.
func reportDeferredFree(core: ControllerCore, descriptor: IRQDescriptor, log: KernelLog) {
    if AtomicContext.isAtomic {
        var extra: [String] = []
        if AtomicContext.inInterrupt { extra = ["WARNING: Trying to free IRQ \(descriptor.irq) from IRQ context!"] }
        _ = AtomicContext.sleepingCallReported("free_irq", log: log, extra: extra, file: #fileID, line: #line)
    } else {
        AtomicContext.warn(
            .warning,
            ["WARNING: free_irq(\(descriptor.irq)) from the line's own threaded handler would wait for itself; deferred"],
            function: "free_irq", log: log, file: #fileID, line: #line)
    }
}
