import Foundation
@testable import IRQCore
import IRQEmu
@testable import KernelRuntime
import SystemPackage
import Synchronization
import TestSupport
import Testing

/// Seeded fault injection: reproducible decisions, every knob off by default, and each
/// knob doing what it says (tests scope their faults to a controller or device, or to a
/// thread, never the whole process).
@Suite(.timeLimit(.minutes(2)))
struct FaultInjectionTests {
    @Test func theTextFormRoundTripsAndBadInputIsRefused() throws {
        var faults = Faults(seed: 42)
        faults.gracePeriod = .init(probability: 0.25, maximum: .milliseconds(2))
        faults.readerPreemption = .init(probability: 0.01, maximum: .zero)
        faults.requestFailure = 0.5
        faults.interruptsDuringUnbind = true
        faults.quarantine = .milliseconds(50)
        #expect(faults.description == "seed=42,gp=0.25:2ms,reader=0.01:0,request-fail=0.5,unbind-irqs=1,quarantine=50ms")
        #expect(try Faults(parsing: faults.description) == faults)
        for bad in ["seed=x", "gp=2", "unknown=1", "gp", "request-fail=-0.1", "quarantine=3 lightyears"] {
            #expect(throws: Errno.invalidArgument) { _ = try Faults(parsing: bad) }
        }
        #expect(!Faults.none.isActive && !Faults(seed: 9).isActive && faults.isActive)
    }

    /// A thread's decisions at a site depend on the seed, the site, the thread's name and
    /// its count there, not on timing: two threads of one name draw the same sequence.
    @Test func decisionsRepeatForTheSameSeedSiteAndThreadName() throws {
        var faults = Faults(seed: 7)
        faults.duplicateEdge = 0.5
        func draws(_ name: String, seed: UInt64) -> [Bool] {
            var configured = faults
            configured.seed = seed
            let f = configured
            let box = Box<[Bool]>([])
            let thread = try! KThread(name: name) {
                FaultInjection.scopeCreated(f)
                box.set(FaultInjection.withScope(f) { (0..<64).map { _ in FaultInjection.fires(.duplicateEdge) { $0.duplicateEdge } } })
            }
            try! thread.join()
            return box.get()
        }
        let first = draws("fault-a", seed: 7), again = draws("fault-a", seed: 7)
        #expect(first == again)
        #expect(first != draws("fault-b", seed: 7), "another thread name draws otherwise")
        #expect(first != draws("fault-a", seed: 8), "another seed draws otherwise")
        #expect((20...44).contains(first.filter { $0 }.count), "about half fire at p = 0.5")
    }

    /// Injected ENOMEM in request_irq, on one controller: the request fails and leaves
    /// nothing requested; the controller's other calls go on.
    @Test func injectedRequestFailureLeavesNothingRequested() throws {
        var faults = Faults(seed: 1)
        faults.requestFailure = 1
        let controller = try IRQController(faults: faults)
        let irq = try controller.addSoftwareLine()
        let error = try onThread { caught(IRQError.self) { try controller.requestIRQ(irq, name: "starved") { _ in .handled } } }
        guard case .outOfResources(irq?, _, .noMemory)? = error else {
            Issue.record("expected an injected ENOMEM, got \(String(describing: error))")
            return
        }
        #expect(try controller.stats(irq).actions.isEmpty)
        #expect(try controller.stats(irq).depth == 1, "the line was never set up")
    }

    /// Injected ENOMEM for Devres creation, on one device: the probe fails, what it had
    /// registered is released, and the error names the device.
    @Test func injectedDevresFailureFailsTheProbeCleanly() throws {
        var faults = Faults(seed: 2)
        faults.devresFailure = 1
        let device = Device(name: "starved", faults: faults)
        let counter = Counted.Counter()
        let error = try onThread { () -> DeviceError? in
            caught(DeviceError.self) {
                try device.bind(ClosureDriver { bound in _ = try Devres(bound, Counted(counter: counter)) })
            }
        }
        guard case .probeFailed? = error else {
            Issue.record("expected a failed probe, got \(String(describing: error))")
            return
        }
        #expect(counter.droppedCount == counter.createdCount, "the value was dropped")
        #expect(device.resourceCount == 0 && !device.isBound)
        #expect(device.log.messages.contains { $0.contains("out of memory (ENOMEM)") })
    }

    /// Injected thread creation failure: KThread throws EAGAIN, and a threaded request fails
    /// with outOfResources, leaving nothing requested.
    @Test func injectedThreadCreationFailure() throws {
        var configured = Faults(seed: 3)
        configured.threadCreationFailure = 1
        let faults = configured
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let (thread, request) = try onThread { () -> (Errno?, IRQError?) in
            FaultInjection.scopeCreated(faults)
            return FaultInjection.withScope(faults) {
                (caught(Errno.self) { _ = try KThread(name: "never") {} },
                 caught(IRQError.self) {
                     try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "threadless", handler: nil) { _ in .handled }
                 })
            }
        }
        #expect(thread == .resourceTemporarilyUnavailable)
        guard case .outOfResources? = request else {
            Issue.record("expected outOfResources, got \(String(describing: request))")
            return
        }
        #expect(try controller.stats(irq).actions.isEmpty)
    }

    /// Extra interrupts: with duplicateEdge at 1 each edge is handled twice; with
    /// spuriousInterrupt at 1 a CPU's line takes interrupts nobody raised.
    @Test func duplicateAndSpuriousInterrupts() throws {
        var duplicate = Faults(seed: 4)
        duplicate.duplicateEdge = 1
        let c1 = try IRQController(faults: duplicate)
        let irq1 = try c1.addEventFDLine()
        let hits1 = Hits()
        try onThread {
            try c1.requestIRQ(irq1, name: "twice") { _ in hits1.hit(); return .handled }
            try c1.raiseAndQuiesce(irq1, times: 5)
        }
        #expect(hits1.value == 10)

        var spurious = Faults(seed: 5)
        spurious.spuriousInterrupt = 1
        let c2 = try IRQController(faults: spurious)
        let (raised, quiet) = (try c2.addEventFDLine(), try c2.addEventFDLine())
        let quietHits = Hits()
        try onThread {
            try c2.requestIRQ(raised, name: "raised") { _ in .handled }
            try c2.requestIRQ(quiet, name: "quiet") { _ in quietHits.hit(); return .none }
            try c2.raiseAndQuiesce(raised, times: 20)
        }
        #expect(quietHits.value > 0, "the line nobody raised took interrupts")
        #expect(try c2.stats(quiet).raised == 0)
    }

    /// Stretched grace periods: each grace period waited for takes the injected delay on
    /// top (here always the full 20 ms at probability 1 with a fixed draw), which is legal.
    @Test func stretchedGracePeriods() throws {
        var configured = Faults(seed: 6)
        configured.gracePeriod = .init(probability: 1, maximum: .milliseconds(20))
        let faults = configured
        let took = try onThread { () -> UInt64 in
            FaultInjection.scopeCreated(faults)
            return try FaultInjection.withScope(faults) { () throws -> UInt64 in
                let start = monotonicNanoseconds()
                for _ in 0..<5 { try RCU.synchronize() }
                return monotonicNanoseconds() - start
            }
        }
        #expect(took > 5_000_000, "five grace periods stretched by up to 20 ms each took \(took) ns")
    }

    /// Interrupts during unbind: the classic ordering bug (data registered after the IRQ,
    /// read by its handler) is caught at the release step that frees the data, with no
    /// interrupt placed there by hand; every report names the faults.
    @Test func interruptsDuringUnbindCatchTheOrderingBug() throws {
        var faults = Faults(seed: 8)
        faults.interruptsDuringUnbind = true
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "late-data", faults: faults)
        final class Reader: Handler {
            let data = Box<Devres<Int>?>(nil)
            let failures = Hits()
            func handle(device: borrowing Device.Bound) -> IRQReturn {
                if let data = data.get(), (try? data.access(device) { $0 }) == nil { failures.hit() }
                return .handled
            }
        }
        let reader = Reader()
        let registration = Box<Registration<Reader>?>(nil)
        try onThread {
            try device.bind(ClosureDriver { bound in
                registration.set(try Registration(bound, controller: controller, irq: irq, name: "reader", handler: reader))
                reader.data.set(try Devres(bound, 1))  // after the IRQ: released first
            })
            _ = try device.unbind()
        }
        #expect(reader.failures.value >= 1, "an interrupt arrived between the data's release and free_irq")
        let violation = device.log.reports(.violation).first
        #expect(violation?.headline == "BUG: irqemu: access to released Devres<Int> of device late-data")
        #expect(violation?.lines.contains("irqemu: faults injected: seed=8,unbind-irqs=1") == true)
    }

    /// Quarantine: a released value's deinit waits the quarantine out, while its release
    /// (its teardown) happens on time; a late access says where the value was released.
    @Test func quarantineDelaysTheDeinitNotTheRelease() throws {
        final class Payload: ReleasableResource {
            let released = Atomic<UInt64>(0)
            let dropped: Box<UInt64>
            init(dropped: Box<UInt64>) { self.dropped = dropped }
            func releaseResource() { released.store(monotonicNanoseconds(), ordering: .relaxed) }
            deinit { dropped.set(monotonicNanoseconds()) }
        }
        var faults = Faults(seed: 9)
        faults.quarantine = .milliseconds(100)
        let device = Device(name: "quarantined", faults: faults)
        let dropped = Box<UInt64>(0)
        let devres = Box<Devres<Payload>?>(nil)
        let releasedAt = Box<UInt64>(0)
        let (unboundAt, lateError) = try onThread { () -> (UInt64, DeviceError?) in
            try device.bind(ClosureDriver { bound in devres.set(try Devres(bound, Payload(dropped: dropped))) })
            let payload = devres.get()!.tryAccess { $0 }!
            _ = try device.unbind()
            let unboundAt = monotonicNanoseconds()
            releasedAt.set(payload.released.load(ordering: .relaxed))
            // A late access, on proof of a new binding of the same device.
            try device.bind(ClosureDriver())
            let late = try device.withBound { bound in caught(DeviceError.self) { _ = try devres.get()!.access(bound) { $0 } } }
            _ = try device.unbind()
            return (unboundAt, late)
        }
        #expect(releasedAt.get() != 0 && releasedAt.get() <= unboundAt, "released on time, before unbind returned")
        #expect(dropped.get() == 0, "its deinit waits in the quarantine")
        _ = spin(upTo: 5) { dropped.get() != 0 }
        #expect(dropped.get() >= unboundAt + 100_000_000 - 5_000_000, "dropped after the quarantine")
        guard case .released? = lateError else {
            Issue.record("the late access was not refused: \(String(describing: lateError))")
            return
        }
        let report = device.log.reports(.violation).last
        #expect(report?.lines.contains { $0.hasPrefix("released by ") && $0.hasSuffix("its deinit is delayed (quarantine)") } == true)
    }

    /// The request-leak check: a probe that requests an IRQ by hand and fails without
    /// freeing it is reported (so is an unbind whose remove forgot the free); the driver
    /// that frees it on its error path is not.
    @Test(arguments: [false, true])
    func aRequestLeakedOnAnErrorPathIsReported(freesOnError: Bool) throws {
        struct Failure: Error {}
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: freesOnError ? "careful" : "leaky")
        let cookie = Cookie()
        _ = try onThread { () -> DeviceError? in
            caught(DeviceError.self) {
                try device.bind(ClosureDriver { _ in
                    try controller.requestIRQ(irq, flags: .shared, name: "leaky", devID: cookie) { _ in .handled }
                    if freesOnError { try controller.freeIRQ(irq, devID: cookie) }
                    throw Failure()
                })
            }
        }
        let leaks = device.log.reports(.violation).map(\.headline)
        if freesOnError {
            #expect(leaks.isEmpty, "\(leaks)")
        } else {
            #expect(leaks == [
                "WARNING: irqemu: irq \(irq) (leaky), requested with request_irq by a driver callback of device leaky, is still held after its failed probe",
            ])
            _ = try onThread { try controller.freeIRQ(irq, devID: cookie) }
        }
    }
}
