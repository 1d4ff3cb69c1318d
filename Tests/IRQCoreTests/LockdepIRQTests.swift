import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

extension KernelLog {
    var lockdepHeadlines: [String] { reports(.lockdep).map(\.headline) }
}

/// The waits of a line that wait for its threaded handlers.
enum LineWait: String, CaseIterable, Sendable {
    case free = "free_irq", synchronize = "synchronize_irq", disable = "disable_irq"

    func run(_ controller: IRQController, _ irq: IRQNumber) throws {
        switch self {
        case .free: try controller.freeIRQ(irq)
        case .synchronize: try controller.synchronizeIRQ(irq)
        case .disable: try controller.disableIRQ(irq)
        }
    }
}

/// A handler that reads a Devres with `access(bound)` (or `tryAccess`) on each interrupt.
final class DevresReadingHandler: Handler, ThreadedHandler {
    let data = Box<Devres<Int>?>(nil)
    let useTryAccess: Bool
    let reads = Atomic<Int>(0)
    init(useTryAccess: Bool = false) { self.useTryAccess = useTryAccess }

    func read(_ device: borrowing Device.Bound) {
        guard let devres = data.get() else { return }
        let value = useTryAccess ? devres.tryAccess { $0 } : try? devres.access(device) { $0 }
        if value != nil { reads.add(1, ordering: .relaxed) }
    }

    func handle(device: borrowing Device.Bound) -> IRQReturn {
        read(device)
        return .handled
    }

    func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
        read(device)
        return .handled
    }
}

/// The lock validator and the teardown-order check in the IRQ core. Every bug is provoked
/// without its deadlock or its race: the handler has run and is idle when the wait comes,
/// and the access happens whenever an interrupt does.
@Suite(.timeLimit(.minutes(2)))
struct LockdepIRQTests {
    /// free_irq, synchronize_irq or disable_irq under a mutex the line's threaded handler
    /// takes: the wait would wait for a handler waiting for the mutex.
    @Test(arguments: LineWait.allCases)
    func waitUnderAMutexTheThreadedHandlerTakesIsCircular(wait: LineWait) throws {
        try LockdepGate.run {
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let lock = SleepingMutex(0, key: LockClassKey("threaded-handler->lock (\(wait.rawValue))"))
            try onThread {
                try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "ld-\(wait.rawValue)", handler: nil) { _ in
                    _ = try? lock.withLock { $0 += 1 }
                    return .handled
                }
                try controller.raiseAndQuiesce(irq)
                try lock.withLock { _ in _ = try? wait.run(controller, irq) }
                if wait != .free { _ = try? controller.freeIRQ(irq) }
            }
            #expect(try lock.withLock { $0 } == 1, "the handler ran once, before the wait")
            #expect(controller.log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
            let lines = controller.log.reports.first?.lines ?? []
            #expect(lines.contains { $0.hasPrefix("-> #0 ((irq_thread)IRQCoreTests/LockdepIRQTests.swift:") })
            #expect(lines.last?.hasPrefix(" \(wait.rawValue) at IRQCoreTests/LockdepIRQTests.swift:") == true)
        }
    }

    @Test(arguments: LineWait.allCases)
    func waitOutsideTheMutexIsSilent(wait: LineWait) throws {
        try LockdepGate.run {
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let lock = SleepingMutex(0)
            try onThread {
                try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "ld-ok", handler: nil) { _ in
                    _ = try? lock.withLock { $0 += 1 }
                    return .handled
                }
                try controller.raiseAndQuiesce(irq)
                try lock.withLock { $0 += 1 }
                try wait.run(controller, irq)
                if wait != .free { _ = try? controller.freeIRQ(irq) }
            }
            #expect(controller.log.reports.isEmpty)
        }
    }

    /// The classic IRQ-unsafe lock: a spinlock taken in the handler and, with interrupts
    /// on, in process context. In irqemu it can never deadlock (the handler runs on its
    /// CPU's thread); it is reported all the same.
    @Test func spinlockSharedWithTheHandlerWithoutIRQSaveIsInconsistent() throws {
        try LockdepGate.run {
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let lock = SpinLock(0, key: LockClassKey("dev->lock (handler)"))
            try onThread {
                try controller.requestIRQ(irq, name: "ld-spin") { _ in
                    lock.withLock { $0 += 1 }
                    return .handled
                }
                try controller.raiseAndQuiesce(irq)
                KernelLog.withCurrent(controller.log) { lock.withLock { $0 += 1 } }
                try controller.freeIRQ(irq)
            }
            #expect(controller.log.lockdepHeadlines == ["WARNING: inconsistent lock state"])
            let lines = controller.log.reports.first?.lines ?? []
            #expect(lines.contains("inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage."))
            #expect(lines.contains { $0.contains(" by ") && $0.contains("/cpu0/") }, "where it became irq-safe: the CPU")
        }
    }

    @Test func spinlockSharedWithTheHandlerWithIRQSaveIsSilent() throws {
        try LockdepGate.run {
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let lock = SpinLock(0)
            try onThread {
                try controller.requestIRQ(irq, name: "ld-spin-ok") { _ in
                    lock.withLock { $0 += 1 }
                    return .handled
                }
                try controller.raiseAndQuiesce(irq, times: 3)
                KernelLog.withCurrent(controller.log) { lock.withLockIRQSave { $0 += 1 } }
                try controller.freeIRQ(irq)
            }
            #expect(controller.log.reports.isEmpty)
        }
    }

    // MARK: - Teardown order

    /// Binds `device` with a registration of `handler` on `irq` and a Devres the handler
    /// reads, registered after the registration (`dataFirst` false) or before it.
    func bind(
        _ device: Device, controller: IRQController, irq: IRQNumber, handler: DevresReadingHandler,
        threaded: Bool = false, dataFirst: Bool
    ) throws -> Box<[AnyObject]> {
        let keep = Box<[AnyObject]>([])
        try device.bind(ClosureDriver { bound in
            if dataFirst { handler.data.set(try Devres(bound, 42)) }
            if threaded {
                keep.set([try ThreadedRegistration(bound, controller: controller, irq: irq, flags: .oneShot, name: "ld-teardown", handler: handler)])
            } else {
                keep.set([try Registration(bound, controller: controller, irq: irq, name: "ld-teardown", handler: handler)])
            }
            if !dataFirst { handler.data.set(try Devres(bound, 42)) }
        })
        return keep
    }

    @Test(arguments: [false, true])
    func handlerReadingDataRegisteredAfterItsIRQIsReported(threaded: Bool) throws {
        try LockdepGate.run {
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let device = Device(name: "ld-teardown")
            let handler = DevresReadingHandler()
            try onThread {
                let keep = try bind(device, controller: controller, irq: irq, handler: handler, threaded: threaded, dataFirst: false)
                try controller.raiseAndQuiesce(irq, times: 3)
                try device.unbind()
                withExtendedLifetime(keep) {}
            }
            #expect(handler.reads.load(ordering: .relaxed) == 3, "every read went ahead: the device was bound")
            let reports = device.log.reports(.teardownOrder)
            #expect(reports.map(\.headline) == ["WARNING: irqemu: handler of irq \(irq) (ld-teardown) accesses Devres<Int> registered after its IRQ"], "reported once")
            let lines = reports.first?.lines ?? []
            #expect(lines.contains { $0.hasPrefix("Devres<Int> of device ld-teardown was registered at IRQCoreTests/LockdepIRQTests.swift:") })
            #expect(lines.contains { $0.hasPrefix("unbind releases resources newest first") })
            #expect(device.log.reports(.violation).isEmpty, "no read of released data happened")
        }
    }

    @Test(arguments: [false, true])
    func handlerReadingDataRegisteredBeforeItsIRQIsSilent(threaded: Bool) throws {
        try LockdepGate.run {
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let device = Device(name: "ld-teardown-ok")
            let handler = DevresReadingHandler()
            try onThread {
                let keep = try bind(device, controller: controller, irq: irq, handler: handler, threaded: threaded, dataFirst: true)
                try controller.raiseAndQuiesce(irq, times: 3)
                try device.unbind()
                withExtendedLifetime(keep) {}
            }
            #expect(handler.reads.load(ordering: .relaxed) == 3)
            #expect(device.log.reports.isEmpty)
        }
    }

    @Test func handlerUsingTryAccessIsSilent() throws {
        try LockdepGate.run {
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let device = Device(name: "ld-teardown-try")
            let handler = DevresReadingHandler(useTryAccess: true)
            try onThread {
                let keep = try bind(device, controller: controller, irq: irq, handler: handler, dataFirst: false)
                try controller.raiseAndQuiesce(irq, times: 3)
                try device.unbind()
                withExtendedLifetime(keep) {}
            }
            #expect(handler.reads.load(ordering: .relaxed) == 3)
            #expect(device.log.reports.isEmpty)
        }
    }
}
