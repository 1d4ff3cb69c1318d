import DeviceModel
import KernelRuntime
import RCU

import Synchronization

/// The requested IRQ behind a registration (the upstream `RegistrationInner`, whose `Drop`
/// calls `free_irq`). A registration holds it in a `Devres`: releasing the Devres (at
/// unbind, or when the registration is dropped) frees the IRQ, exactly once, even if
/// something else still holds a reference to this object.
public final class RegistrationInner: DeviceResource {
    public let controller: IRQController
    public let irq: IRQNumber
    let descriptor: IRQDescriptor
    let log: KernelLog
    /// Set once the request succeeded; cleared by the one release that frees the IRQ.
    private let requested = Atomic<Bool>(false)

    init(controller: IRQController, irq: IRQNumber, log: KernelLog) throws(IRQError) {
        self.controller = controller
        self.irq = irq
        self.descriptor = try controller.core.descriptor(irq)
        self.log = log
    }

    /// The identity the action is requested under (the kernel's `dev_id`).
    var devID: ObjectIdentifier { ObjectIdentifier(self) }

    /// Arms the release: called once the IRQ was requested under `devID`. Until then
    /// (a failed request) releasing frees nothing.
    func markRequested() { requested.store(true, ordering: .releasing) }

    /// `synchronize_irq` on the line.
    @available(*, noasync, message: "waits for running handlers")
    public func synchronize(file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        try controller.synchronizeIRQ(irq, file: file, line: line)
    }

    /// Frees the IRQ (called by the Devres release; also by `deinit` if it never ran), once,
    /// and only if it was requested.
    public func releaseResource() {
        guard requested.exchange(false, ordering: .acquiringAndReleasing) else { return }
        let core = controller.core
        if AtomicContext.isAtomic || descriptor.calledFromOwnThread {
            // free_irq would sleep here (or wait for this very thread): unlink now so the
            // handler never starts again, and let the reaper do the waiting.
            if core.detachForDeferredFree(descriptor, devID: devID) {
                reportDeferredFree(core: core, descriptor: descriptor, log: log)
            }
            let descriptor = self.descriptor
            let devID = self.devID
            Reaper.shared.schedule("free_irq(\(irq))") { core.finishDetachedFree(descriptor, devID: devID) }
        } else {
            _ = try? core.free(descriptor, devID: devID, function: "free_irq", file: #fileID, line: #line, warnIfMissing: true)
        }
    }

    deinit { releaseResource() }
}

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
