import DeviceModel

/// An IRQ handler for a `Registration` (rust/kernel/irq/request.rs `Handler`).
///
/// `handle` runs in hard-IRQ context on a dispatcher CPU, inside an RCU read-side section:
/// it must not sleep (the checker refuses sleeping calls there). It gets proof that the
/// device is bound: the IRQ is freed before the device's unbind completes.
public protocol Handler: AnyObject, Sendable {
    /// Handles one interrupt. Return `.none` if it was not from this device.
    func handle(device: borrowing Device.Bound) -> IRQReturn
}

/// A handler with a threaded part, for a `ThreadedRegistration`
/// (rust/kernel/irq/request.rs `ThreadedHandler`).
///
/// `handle` runs in hard-IRQ context and by default wakes the thread; `handleThreaded`
/// runs on the action's own `irq/N-name` thread, in process context, and may sleep.
public protocol ThreadedHandler: AnyObject, Sendable {
    /// The primary handler, hard-IRQ context. Default: `.wakeThread`.
    func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn
    /// The threaded handler, process context.
    func handleThreaded(device: borrowing Device.Bound) -> IRQReturn
}

extension ThreadedHandler {
    /// Default: wakes the thread, as the kernel's default primary handler (`irq_default_primary_handler`) does.
    public func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn { .wakeThread }
}
