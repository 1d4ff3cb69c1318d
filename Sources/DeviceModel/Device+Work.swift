import KernelRuntime
import Synchronization

/// How unbind cancels managed work (`Device.addWork`).
package enum ManagedWorkCancel: Sendable {
    /// `disableWorkSync`: later enqueues are refused, so a handler that is still running
    /// (its Registration freed after the work's cancel) cannot queue it again. The default,
    /// in both unbind modes.
    case disableSync
    /// `cancelWorkSync`, for tests that show what it lets through: the work is enabled again
    /// on return, and such a handler queues it again after its cancel.
    case cancelSync
}

extension Device {
    /// Ties `item`'s work to the device (`devm_work_autocancel`): unbind cancels it, at its
    /// LIFO place among the device's resources, with `disableWorkSync`: once that step is
    /// done the item is neither pending nor running, and every later enqueue is refused
    /// (`.disabled`), so it stays off. Never in a `deinit`: a queued item keeps its owner
    /// alive, so the owner's `deinit` cannot run while it is pending.
    ///
    /// Register the work before the IRQ whose handler queues it: unbind then frees the IRQ
    /// first (no handler runs any more) and cancels the work after. The other order is
    /// reported on the first enqueue from such a handler, whatever the timing (its
    /// Registration is freed after the work's cancel, so it could queue the work again).
    ///
    /// The device keeps a reference to the item until that step. Work items receive no
    /// `Device.Bound`: an item that runs between batched unbind's flip of the RCU Devres and
    /// its own cancel finds them revoked (`tryAccess` returns nil). This also starts the
    /// system workqueues if this is their first use, so a handler never starts them.
    ///
    /// - Throws: `wrongDevice`, `notBound` (the item is then cancelled and disabled at once,
    ///   as `devm_add_action_or_reset` runs its action), `atomicContext`.
    @available(*, noasync, message: "may cancel the work at once")
    public func addWork<Item: WorkItem>(
        _ bound: borrowing Bound, _ item: Item, file: StaticString = #fileID, line: UInt = #line
    ) throws(DeviceError) {
        guard bound.device === self else { throw .wrongDevice(expected: name, given: bound.device.name) }
        try mightSleep("Device.addWork(_:_:)", file: file, line: line)
        _ = Workqueue.system
        let node = WorkNode(device: self, item: item, file: file, line: line)
        do {
            try add(node, operation: "addWork")
        } catch {
            node.claimAndDrop()
            throw error
        }
        let observer = item.work.installObserver { ManagedWorkObserver() }
        observer.manage(device: self, sequence: node.sequence.load(ordering: .acquiring))
    }

    /// How unbind cancels this device's managed work (a package switch for tests).
    package var managedWorkCancel: ManagedWorkCancel {
        get { lock.withLock { managedWorkCancelMode } }
        set { lock.withLock { managedWorkCancelMode = newValue } }
    }
}

/// Managed work on the devres list: its release is the cancel.
final class WorkNode: DevresNode, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `item` is written at init and taken once, by the thread
    // that claimed the release.
    private var item: (any WorkItem)?
    private let itemName: String

    init(device: Device, item: any WorkItem, file: StaticString, line: UInt) {
        self.item = item
        itemName = "\(type(of: item))"
        super.init(device: device, file: file, line: line)
    }

    override var resourceName: String { "managed work \(itemName)" }

    /// `disableWorkSync` (or, under the test switch, `cancelWorkSync`), then the node lets
    /// go of the item. From the item's own run (it unbinds its device) the sync call is
    /// refused (reported as a self-wait): the item is disabled without waiting, and this
    /// release returns while the item's run, which called it, goes on.
    override func dropResource() {
        guard let item else { return }
        self.item = nil
        let mode = device.managedWorkCancel
        do throws(WorkqueueError) {
            switch mode {
            case .disableSync: try item.disableWorkSync()
            case .cancelSync: try item.cancelWorkSync()
            }
        } catch {
            if mode == .disableSync { item.disableWork() } else { item.cancelWork() }
        }
    }
}

/// Checks every enqueue of a managed item: from a handler of the same device whose
/// Registration was registered before the item (so it is freed after the item's cancel),
/// it reports once.
final class ManagedWorkObserver: WorkEnqueueObserver {
    /// The managing device's serial (0: not managed) and the item's devres sequence there.
    private let deviceSerial = Atomic<UInt64>(0)
    private let sequence = Atomic<UInt32>(0)
    private let reported = Atomic<Bool>(false)

    func manage(device: Device, sequence: UInt32) {
        self.sequence.store(sequence, ordering: .releasing)
        deviceSerial.store(device.serial, ordering: .releasing)
    }

    /// Outside handlers: one thread-local load. In a handler of another device: two more.
    func willEnqueue(_ work: Work) {
        guard let mark = HandlerMark.current else { return }
        let serial = deviceSerial.load(ordering: .acquiring)
        guard serial != 0, serial == mark.device.serial else { return }
        let registration = mark.registeredSequence
        let managed = sequence.load(ordering: .acquiring)
        guard registration < managed else { return }
        guard !reported.exchange(true, ordering: .relaxed) else { return }
        report(mark: mark, work: work, registration: registration, managed: managed)
    }

    @inline(never)
    private func report(mark: HandlerMark, work: Work, registration: UInt32, managed: UInt32) {
        let device = mark.device
        AtomicContext.warn(
            .warning,
            [
                "WARNING: irqemu: IRQ handler \(mark.name) of device \(device.name) queues managed work whose cancel is registered after the handler's Registration",
                "irqemu: devres #\(registration) (the Registration) is released after devres #\(managed) (the work's cancel): unbind cancels the work before it frees the IRQ, so this handler can queue the work again after its cancel",
                "irqemu: register the work (Device.addWork) before requesting the IRQ that queues it",
            ],
            function: "Workqueue.enqueue(_:)", log: device.log, file: #fileID, line: #line)
    }
}

extension Device {
    /// Registers `value` on the device, to be dropped when it is unbound (rust's
    /// `devres::register`): no handle is returned, so nothing can reach it or release it
    /// early. Its `deinit` runs at its own LIFO place during unbind (newest first with the
    /// device's other resources), before any older resource is released. Capturing a value
    /// in an `addAction` closure does not give that order: the closure, and what it
    /// captured, lives until the whole release has finished.
    ///
    /// - Throws: `wrongDevice`, `notBound`, `atomicContext` (registering may allocate, as
    ///   `GFP_KERNEL` may sleep). `value` is dropped before the error is thrown, as
    ///   `devm_add_action_or_reset` drops it.
    @available(*, noasync, message: "may sleep")
    public func register<Value: Sendable>(
        _ bound: borrowing Bound, _ value: consuming Value, file: StaticString = #fileID, line: UInt = #line
    ) throws(DeviceError) {
        guard bound.device === self else { throw .wrongDevice(expected: name, given: bound.device.name) }
        try mightSleep("Device.register(_:_:)", file: file, line: line)
        let node = ValueNode(device: self, value: value, file: file, line: line)
        do {
            try add(node, operation: "register")
        } catch {
            node.claimAndDrop()
            throw error
        }
    }
}

/// A value registered with `Device.register`: its release drops it.
final class ValueNode<Value: Sendable>: DevresNode, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `value` is written at init and dropped once, by the
    // thread that claimed the release.
    private var value: Value?

    init(device: Device, value: consuming Value, file: StaticString, line: UInt) {
        self.value = value
        super.init(device: device, file: file, line: line)
    }

    override var resourceName: String { "registered \(Value.self)" }

    override func dropResource() { value = nil }
}

extension Device: DeviceScope {
    /// A cancel or disable that does not wait, made by the driver's remove or a release
    /// action: once the release is over, the item must be neither running (the cancel did
    /// not wait for it) nor pending (a handler queued it again before its IRQ was freed).
    /// Checked then, and reported (kind `violation`) if it is.
    package func workCancelledWithoutWaiting(_ work: Work, function: String) {
        guard lock.withLock({ state == .removing || state == .releasing }) else { return }
        weak let weakWork = work
        noteUnmanaged { device, after in
            guard let work = weakWork else { return nil }
            let state = work.isRunning ? "running" : work.isPending ? "pending" : nil
            guard let state else { return nil }
            return [
                "WARNING: irqemu: work \(work.functionName) of device \(device), cancelled with \(function) by its driver, is still \(state) after \(after)",
                "\(function) does not wait for a running instance\(function.hasPrefix("cancel") ? ", and the item may be queued again after it" : ""): use disableWorkSync() in remove, or tie the work to the device with addWork",
            ]
        }
    }
}
