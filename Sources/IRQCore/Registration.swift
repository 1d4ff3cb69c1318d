import DeviceModel
import KernelRuntime
import RCU

/// A requested IRQ tied to a bound device, with its handler (rust/kernel/irq/request.rs
/// `Registration`, the design of the request_irq thread: `Registration<T> { reg:
/// Devres<RegistrationInner>, data: T }`).
///
/// - The handler is created before the IRQ is requested, so an interrupt may arrive
///   before the initializer returns. It is reachable through `handler` at any time,
///   without synchronization, and stays valid until after free_irq.
/// - free_irq runs exactly once, and only in one of three ways: the registration is
///   dropped, its device is unbound (before unbind returns, even if the registration is
///   still referenced elsewhere), or its controller shuts down. Nothing else can free it:
///   its requested IRQ is not reachable from outside.
/// - Dropped where free_irq may not sleep (in a handler, a read-side section, or the
///   line's own thread), the action is unlinked at once so the handler never starts again,
///   the sleeping call is reported, and the reaper thread does the waiting (so a drop on the
///   line's own thread never waits for a concurrent unbind whose free_irq waits for that
///   thread). Dropped in a task, where no thread of the concurrency pool may wait, it is
///   handed over the same way, unreported: `await Reaper.shared.flush()` waits for the free.
/// - The hard-IRQ path calls `handler.handle(device:)` with no retain or release (checked
///   in the release build's code), with the Registration marked on the thread
///   (`HandlerMark`), so ordering checks (a Devres the handler reads, managed work it
///   queues) know which Registration's handler runs.
public final class Registration<H: Handler>: Sendable {
    /// The handler data, readable without synchronization.
    public let handler: H
    let requested: RegisteredIRQ

    /// Requests the IRQ `request` names (`Registration::new(request, flags, name, handler)`),
    /// with `handler` run in hard-IRQ context. `strategy` is the revocation strategy of the
    /// Devres that holds the IRQ.
    ///
    /// - Throws: `IRQError` from the request (EINVAL, EBUSY, …) or the device model (the
    ///   device is not bound: ENODEV); on error nothing stays requested.
    @available(*, noasync, message: "may sleep")
    public convenience init(
        _ request: IRQRequest,
        flags: IRQFlags = [],
        name: String,
        strategy: RevocationStrategy = .rcu,
        file: StaticString = #fileID, line: UInt = #line,
        handler: H
    ) throws(IRQError) {
        try self.init(
            Device.Bound(request.device), controller: request.controller, irq: request.irq, flags: flags,
            name: name, strategy: strategy, file: file, line: line, handler: handler)
    }

    /// Requests `irq` on `controller` for the bound device, with `handler` run in hard-IRQ
    /// context (`request_irq` by number, for quick tests; a driver asks its device for an
    /// `IRQRequest` instead). `strategy` is the revocation strategy of the Devres that
    /// holds the IRQ.
    ///
    /// - Throws: `IRQError` from the request (EINVAL, EBUSY, …) or the device model; on
    ///   error nothing stays requested.
    @available(*, noasync, message: "may sleep")
    public init(
        _ bound: borrowing Device.Bound,
        controller: IRQController,
        irq: IRQNumber,
        flags: IRQFlags = [],
        name: String,
        strategy: RevocationStrategy = .rcu,
        file: StaticString = #fileID, line: UInt = #line,
        handler: H
    ) throws(IRQError) {
        let device = bound.device
        self.handler = handler
        let mark = HandlerMark(device: device, irq: Int(irq.rawValue), name: name, file: file, line: line)
        requested = try RegisteredIRQ(
            bound, controller: controller, irq: irq, flags: flags.union(.condOneShot), name: name,
            strategy: strategy, function: "request_irq", file: file, line: line, mark: mark,
            primary: { _ in mark.run { ThreadedIRQReturn(handler.handle(device: Device.Bound(device))) } },
            thread: nil)
    }

    deinit { requested.dropped() }

    /// The IRQ's number.
    public var irq: IRQNumber { requested.irq.irq }
    /// The device the IRQ belongs to.
    public var device: Device { requested.device }
    /// Whether the IRQ is still requested: false once it was freed (by an unbind or its
    /// controller's shutdown). Racy by nature: for diagnostics.
    public var isRequested: Bool { requested.irq.isRequested }

    /// `synchronize_irq` if the IRQ is still requested (`try_synchronize`).
    ///
    /// Unlike upstream (6.17/6.18), which calls synchronize_irq while holding the
    /// Revocable's RCU guard (a sleeping call in a read-side section), this takes the guard
    /// only to read the IRQ, then waits outside it.
    /// - Throws: `noDevice` (ENODEV) once the device was unbound.
    @available(*, noasync, message: "waits for running handlers")
    public func trySynchronize(file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        try requested.trySynchronize(file: file, line: line)
    }

    /// `synchronize_irq`, on proof that the device is bound.
    /// - Throws: `wrongDevice` (EINVAL) for another device's proof.
    @available(*, noasync, message: "waits for running handlers")
    public func synchronize(_ bound: borrowing Device.Bound, file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        try requested.synchronize(bound, file: file, line: line)
    }
}

/// A registration whose handler has a threaded part (`ThreadedRegistration`): `handle`
/// runs in hard-IRQ context and `handleThreaded` on the action's own thread, in process
/// context. Same lifetime rules as `Registration`.
public final class ThreadedRegistration<H: ThreadedHandler>: Sendable {
    /// The handler data, readable without synchronization.
    public let handler: H
    let requested: RegisteredIRQ

    /// Requests the IRQ `request` names with `handler`'s primary and threaded parts
    /// (`ThreadedRegistration::new`).
    ///
    /// - Throws: as `Registration.init(_:flags:name:strategy:handler:)`, and
    ///   `outOfResources` if the action's thread cannot be created.
    @available(*, noasync, message: "may sleep")
    public convenience init(
        _ request: IRQRequest,
        flags: IRQFlags = [],
        name: String,
        strategy: RevocationStrategy = .rcu,
        file: StaticString = #fileID, line: UInt = #line,
        handler: H
    ) throws(IRQError) {
        try self.init(
            Device.Bound(request.device), controller: request.controller, irq: request.irq, flags: flags,
            name: name, strategy: strategy, file: file, line: line, handler: handler)
    }

    /// Requests `irq` with `handler`'s primary and threaded parts (`request_threaded_irq`
    /// by number).
    @available(*, noasync, message: "may sleep")
    public init(
        _ bound: borrowing Device.Bound,
        controller: IRQController,
        irq: IRQNumber,
        flags: IRQFlags = [],
        name: String,
        strategy: RevocationStrategy = .rcu,
        file: StaticString = #fileID, line: UInt = #line,
        handler: H
    ) throws(IRQError) {
        let device = bound.device
        self.handler = handler
        let mark = HandlerMark(device: device, irq: Int(irq.rawValue), name: name, file: file, line: line)
        requested = try RegisteredIRQ(
            bound, controller: controller, irq: irq, flags: flags, name: name,
            strategy: strategy, function: "request_threaded_irq", file: file, line: line, mark: mark,
            primary: { _ in mark.run { handler.handle(device: Device.Bound(device)) } },
            thread: { _ in mark.run { handler.handleThreaded(device: Device.Bound(device)) } })
    }

    deinit { requested.dropped() }

    /// The IRQ's number.
    public var irq: IRQNumber { requested.irq.irq }
    /// The device the IRQ belongs to.
    public var device: Device { requested.device }
    /// Whether the IRQ is still requested (see `Registration.isRequested`).
    public var isRequested: Bool { requested.irq.isRequested }

    /// See `Registration.trySynchronize()`.
    @available(*, noasync, message: "waits for running handlers")
    public func trySynchronize(file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        try requested.trySynchronize(file: file, line: line)
    }

    /// See `Registration.synchronize(_:)`.
    @available(*, noasync, message: "waits for running handlers")
    public func synchronize(_ bound: borrowing Device.Bound, file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        try requested.synchronize(bound, file: file, line: line)
    }
}

/// What both registrations hold: the requested IRQ as a Devres, and the rules for dropping
/// and synchronizing it.
struct RegisteredIRQ: Sendable {
    /// The Devres, in a slot that only a deferred drop empties (on the reaper thread).
    private let slot: LockedValue<Devres<RequestedIRQ>?>
    let device: Device
    /// The requested IRQ itself, for `isRequested` and the deferred drop (its free_irq runs
    /// through the Devres only).
    let irq: RequestedIRQ

    /// The Devres. The slot is emptied only after the registration's deinit began, when
    /// nothing can call this any more.
    var devres: Devres<RequestedIRQ> { slot.withLock { $0! } }

    init(
        _ bound: borrowing Device.Bound, controller: IRQController, irq number: IRQNumber, flags: IRQFlags, name: String,
        strategy: RevocationStrategy, function: String, file: StaticString, line: UInt, mark: HandlerMark,
        primary: @escaping @Sendable (IRQNumber) -> ThreadedIRQReturn,
        thread: (@Sendable (IRQNumber) -> IRQReturn)?
    ) throws(IRQError) {
        let device = bound.device
        if AtomicContext.isAtomic {
            throw .atomicContext(AtomicContext.sleepingCallReported(function, log: device.log, file: "\(file)", line: line))
        }
        // The handler exists first; an interrupt may arrive before this returns.
        let requested = try RequestedIRQ(controller: controller, irq: number, log: device.log)
        try controller.core.request(
            number, primary: primary, thread: thread, flags: flags, name: name, devID: requested.devID,
            function: function, file: "\(file)", line: line)
        requested.markRequested()  // from here on, releasing it frees the IRQ
        do throws(DeviceError) {
            let devres = try Devres(bound, requested, strategy: strategy, file: file, line: line)
            // Where the handler's registration sits on the device's list, for the
            // teardown-order check.
            mark.registered(at: devres.sequence)
            slot = LockedValue(devres)
        } catch {
            requested.releaseResource()
            throw .device(error)
        }
        self.device = device
        irq = requested
    }

    /// The registration's own part of its drop. Where free_irq may not sleep (atomic
    /// context) or would wait for the calling thread (the line's own thread, maybe while an
    /// unbind's free_irq waits for that thread), unlink the action now, report once, and
    /// hand the whole Devres drop to the reaper; this thread never waits and never holds
    /// the last reference.
    func dropped() {
        let descriptor = irq.descriptor, core = irq.core
        // In a task (where no thread of the concurrency pool may wait) the same hand-off,
        // unreported: free_irq's waits run on the reaper.
        let quietly = !AtomicContext.isAtomic && !descriptor.calledFromOwnThread && TaskContext.isInTask
        guard AtomicContext.isAtomic || descriptor.calledFromOwnThread || quietly else { return }
        if core.detachForDeferredFree(descriptor, devID: irq.devID) {
            if !quietly { reportDeferredFree(core: core, descriptor: descriptor, log: core.log) }
        } else if AtomicContext.isAtomic {
            // Freed already, or being freed by an unbind: the drop may still wait for that.
            _ = AtomicContext.sleepingCallReported(
                "Devres<RegistrationInner>.deinit", log: device.log, file: #fileID, line: #line)
        }
        let slot = self.slot
        Reaper.shared.schedule("drop the registration of irq \(descriptor.irq)") {
            let devres = slot.withLock { $0.take() }
            withExtendedLifetime(devres) {}  // the last reference goes here, on the reaper
        }
    }

    func trySynchronize(file: StaticString, line: UInt) throws(IRQError) {
        // Read the IRQ under the guard, wait outside it.
        guard let registration = devres.tryAccess(file: file, line: line, { $0 }) else {
            throw .noDevice(device: device.name)
        }
        try registration.synchronize(file: file, line: line)
    }

    func synchronize(_ bound: borrowing Device.Bound, file: StaticString, line: UInt) throws(IRQError) {
        let registration: RequestedIRQ
        do throws(DeviceError) {
            registration = try devres.access(bound, file: file, line: line) { $0 }
        } catch {
            if case .wrongDevice(let expected, let given) = error { throw .wrongDevice(expected: expected, given: given) }
            throw .device(error)
        }
        try registration.synchronize(file: file, line: line)
    }
}
