import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// IRQs as device resources (upstream's `IrqRequest` from `irq_by_index`/`irq_by_name`):
/// the device model stores them opaquely; the IRQ core interprets them as lines.
@Suite(.timeLimit(.minutes(1)))
struct IRQResourceTests {
    final class Counter: Handler {
        let hits = Atomic<Int>(0)
        func handle(device: borrowing Device.Bound) -> IRQReturn {
            hits.add(1, ordering: .relaxed)
            return .handled
        }
    }

    /// A driver requests its IRQs by index and by name; the index counts IRQ resources
    /// only; each registration serves its line and is freed at unbind.
    @Test func aDriverRequestsItsIRQsByIndexAndByName() throws {
        let controller = try IRQController()
        let (rx, tx) = (try controller.addSoftwareLine(), try controller.addSoftwareLine())
        let device = Device(name: "nic0", resources: [
            Device.Resource(kind: .init(rawValue: "mem"), name: "regs", value: 0xfe00_0000),
            .irq(rx, on: controller, name: "rx"),
            .irq(tx, on: controller, name: "tx"),
        ])
        let (rxCounter, txCounter) = (Counter(), Counter())
        let registrations = Box<[AnyObject]>([])
        let requested = Box<[IRQNumber]>([])
        try onThread {
            try device.bind(ClosureDriver(name: "nic") { bound in
                let first = try bound.irq(at: 0)
                let byName = try bound.irq(named: "tx")
                requested.set([first.irq, byName.irq])
                registrations.set([
                    try Registration(first, name: "nic0-rx", handler: rxCounter),
                    try ThreadedRegistrationAdapter.make(byName, handler: txCounter),
                ])
            })
            try controller.raiseAndQuiesce(rx, times: 2)
            try controller.raiseAndQuiesce(tx, times: 3)
            _ = try device.unbind()
        }
        #expect(requested.get() == [rx, tx])
        #expect(rxCounter.hits.load(ordering: .relaxed) == 2)
        #expect(txCounter.hits.load(ordering: .relaxed) == 3)
        #expect(try controller.stats(rx).actions.isEmpty && controller.stats(tx).actions.isEmpty, "unbind freed both")
        #expect(registrations.get().allSatisfy { ($0 as? Registration<Counter>)?.isRequested != true })
    }

    /// A missing IRQ is ENXIO with the kernel's `IRQ index N not found` line; the optional
    /// lookups return nil and print nothing.
    @Test func aMissingIRQIsENXIO() throws {
        let device = Device(name: "bare", resources: [Device.Resource(kind: .init(rawValue: "mem"), value: 0)])
        let outcome = Box<[String]>([])
        try onThread {
            try device.bind(ClosureDriver { bound in
                let byIndex = caught(IRQError.self) { _ = try bound.irq(at: 0) }
                let byName = caught(IRQError.self) { _ = try bound.irq(named: "rx") }
                outcome.set([
                    "\(byIndex?.errno == .noSuchAddressOrDevice)", "\(byName?.errno == .noSuchAddressOrDevice)",
                    "\(bound.optionalIRQ(at: 0) == nil)", "\(bound.optionalIRQ(named: "rx") == nil)",
                ])
            })
        }
        #expect(outcome.get() == ["true", "true", "true", "true"])
        #expect(device.log.messages == ["bare: IRQ index 0 not found", "bare: IRQ rx not found"])
    }

    /// A request kept past its binding registers nothing: the device is no longer bound
    /// (ENODEV), and the line stays free.
    @Test func aStaleRequestFailsWithENODEV() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "stale", resources: [.irq(irq, on: controller)])
        let kept = Box<IRQRequest?>(nil)
        let error = try onThread { () -> IRQError? in
            try device.bind(ClosureDriver { bound in kept.set(try bound.irq(at: 0)) })
            _ = try device.unbind()
            return caught(IRQError.self) { _ = try Registration(kept.get()!, name: "late", handler: Counter()) }
        }
        #expect(error?.errno == .operationNotSupportedByDevice)
        #expect(try controller.stats(irq).actions.isEmpty)
    }
}

/// A threaded registration made from a request, with a handler that only has a primary.
enum ThreadedRegistrationAdapter {
    final class Wrapped: ThreadedHandler {
        let inner: IRQResourceTests.Counter
        init(_ inner: IRQResourceTests.Counter) { self.inner = inner }
        func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn { .wakeThread }
        func handleThreaded(device: borrowing Device.Bound) -> IRQReturn { inner.handle(device: device) }
    }

    static func make(_ request: IRQRequest, handler: IRQResourceTests.Counter) throws -> AnyObject {
        try ThreadedRegistration(request, flags: .oneShot, name: "nic0-tx", handler: Wrapped(handler))
    }
}
