import Foundation
@testable import DeviceModel
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// A work item whose runs are counted.
final class BottomHalf: WorkItem {
    let work = Work(name: "bottom-half")
    let runs = Atomic<Int>(0)
    func run() { runs.add(1, ordering: .relaxed) }
}

/// A hard-IRQ handler that queues `item` on `queue` and records what the enqueue did.
final class QueueingHandler: Handler {
    let item: BottomHalf
    let queue: Workqueue
    let results = Box<[EnqueueResult]>([])
    let retainDeltas = Box<[Int]>([])
    let inHardIRQ = Atomic<Bool>(false)
    init(item: BottomHalf, queue: Workqueue) {
        self.item = item
        self.queue = queue
    }
    func handle(device: borrowing Device.Bound) -> IRQReturn {
        let before = _getRetainCount(item)
        let result = queue.enqueue(item)
        let after = _getRetainCount(item)
        inHardIRQ.store(AtomicContext.inHardIRQ, ordering: .relaxed)
        results.update { $0.append(result) }
        retainDeltas.update { $0.append(Int(after) - Int(before)) }
        return .handled
    }
}

/// Bottom halves: hard-IRQ handlers that queue work, and managed work at unbind. Serialized:
/// each storm has a raiser spinning on one of this machine's two cores, and storms run side
/// by side starve each other's dispatchers.
@Suite(.timeLimit(.minutes(5)), .serialized)
struct WorkqueueIRQTests {
    /// A hard-IRQ handler queues work: it never sleeps, takes one reference, and the item
    /// runs on a kworker after. (Allocations on this path are counted by irqbench's
    /// `workqueue` section: 0 per raise-to-run cycle.)
    @Test func aHardIRQHandlerQueuesWorkWithOneReference() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let queue = try Workqueue.ordered(name: "wq-hardirq")
        let gate = RunGate()
        let blocker = Blocker(gate)
        queue.enqueue(blocker)
        #expect(gate.waitUntilHeld(), "the queue's one slot is busy: the item waits, pending")
        let item = BottomHalf()
        let handler = QueueingHandler(item: item, queue: queue)
        let device = Device(name: "bh0", resources: [.irq(irq, on: controller)])
        try onThread {
            try device.bind(ClosureDriver { bound in
                try bound.device.register(bound, try Registration(try bound.irq(at: 0), name: "bh0", handler: handler))
            })
            try controller.raiseAndQuiesce(irq, times: 2)
        }
        let inHardIRQ = handler.inHardIRQ.load(ordering: .relaxed)
        #expect(inHardIRQ)
        #expect(handler.results.get() == [.queued, .alreadyPending])
        #expect(handler.retainDeltas.get() == [1, 0], "one reference, then none")
        gate.release()
        try onThread {
            try queue.flushQueue(timeout: .seconds(10))
            _ = try device.unbind()
            try queue.destroyQueue()
        }
        #expect(item.runs.load(ordering: .relaxed) == 1)
        #expect(device.log.reports.isEmpty && controller.log.reports.isEmpty)
    }

    /// A Registration registered before the managed work it queues is freed after the
    /// work's cancel, so its handler could queue the work again: reported on the first such
    /// enqueue (once), whatever the timing. Registered after the work, nothing is reported.
    @Test(arguments: [false, true])
    func aHandlerQueueingManagedWorkCancelledBeforeItsIRQIsFreedIsReported(workFirst: Bool) throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let item = BottomHalf()
        let handler = QueueingHandler(item: item, queue: .system)
        let device = Device(name: "bell0", resources: [.irq(irq, on: controller)])
        try onThread {
            try device.bind(ClosureDriver { bound in
                if workFirst { try bound.device.addWork(bound, item) }
                try bound.device.register(bound, try Registration(try bound.irq(at: 0), name: "bell", handler: handler))
                if !workFirst { try bound.device.addWork(bound, item) }
            })
            try controller.raiseAndQuiesce(irq, times: 3)
            _ = try item.flushWork(timeout: .seconds(10))
            _ = try device.unbind()
        }
        #expect(item.runs.load(ordering: .relaxed) >= 1)
        #expect(Workqueue.system.enqueue(item) == .disabled, "disabled at unbind")
        if workFirst {
            #expect(device.log.reports.isEmpty)
        } else {
            let reports = device.log.reports
            #expect(reports.count == 1, "reported once")
            #expect(reports.first?.headline == "WARNING: irqemu: IRQ handler bell of device bell0 queues managed work whose cancel is registered after the handler's Registration")
        }
    }

    /// With `disableWorkSync` (the default), in both orders and both unbind modes: no item
    /// (plain or delayed)
    /// runs, or is left pending or running, after its device's unbind returns; every item's
    /// data is dropped exactly once, after its last run. In the handler-before-work order
    /// the enqueue is reported (once per cycle).
    @Test(arguments: UnbindMode.allCases, WorkStorm.Order.allCases)
    func managedWorkStormKeepsTheLifetimeInvariants(mode: UnbindMode, order: WorkStorm.Order) throws {
        let cycles = Scale.iterations(120, tsan: 12)
        let outcome = try WorkStorm.run(mode: mode, order: order, cancel: .disableSync, cycles: cycles)
        #expect(outcome.runsAfterCancel == 0, "a work item ran after its managed cancel returned")
        #expect(outcome.lateRuns == 0, "a work item ran after its device's unbind returned")
        #expect(outcome.busyAtUnbind == 0, "a work item was pending or running when unbind returned")
        #expect(outcome.deadDataRuns == 0)
        #expect(outcome.runs >= cycles / 10, "the storm queued work")
        #expect(outcome.created == 2 * cycles, "one plain and one delayed item per cycle")
        #expect(outcome.dropped == outcome.created, "every item's data dropped exactly once")
        if order == .registrationFirst {
            #expect(outcome.reports > 0 && outcome.reports <= 2 * cycles, "the handler-before-work order reported, once per item")
        } else {
            #expect(outcome.reports == 0, "\(outcome.headlines)")
        }
        print("workqueue storm [\(mode), \(order)]: \(cycles) cycles, \(outcome.runs) runs, \(outcome.lateRuns) late")
    }

    /// The handler-before-work order with plain `cancelWorkSync` as unbind's cancel (the
    /// package switch): the handler queues the work again after its cancel, so work runs
    /// after its cancel (and, when late enough, after unbind returns, or is left pending).
    /// The storm must catch it.
    @Test(arguments: UnbindMode.allCases)
    func theStormCatchesCancelWorkSyncInTheHandlerBeforeWorkOrder(mode: UnbindMode) throws {
        let cycles = Scale.iterations(120, tsan: 20)
        let outcome = try WorkStorm.run(mode: mode, order: .registrationFirst, cancel: .cancelSync, cycles: cycles)
        #expect(outcome.runsAfterCancel + outcome.lateRuns + outcome.busyAtUnbind > 0, "the re-queue after cancelWorkSync was caught")
        #expect(outcome.dropped == outcome.created, "data still dropped exactly once, after its last run")
        #expect(outcome.deadDataRuns == 0, "a queued item keeps its owner alive")
        print("workqueue storm [\(mode), cancelWorkSync]: \(cycles) cycles, \(outcome.runsAfterCancel) runs after the cancel, \(outcome.lateRuns) after unbind, \(outcome.busyAtUnbind) busy at unbind")
    }

    /// The storm with the bottom halves' fault knobs on (each item starts late, each timer
    /// fires late) and the handlers' timing stretched, both unbind modes and both orders:
    /// the same invariants hold. In a child process, whose process-wide faults the workers
    /// and the timer thread see.
    @Test func theStormKeepsItsInvariantsWithWorkAndTimerFaults() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent, \.standardErrorContent]) {
            workStormWithFaults()
        }
        let out = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        #expect(out.components(separatedBy: "with faults:").count == 5, "four storms ran: \(out)")
        #expect(!out.contains("BROKEN"), "\(out)")
        print(out, terminator: "")
    }
}

/// An item that holds its run until released.
final class Blocker: WorkItem {
    let work = Work(name: "blocker")
    let gate: RunGate
    init(_ gate: RunGate) { self.gate = gate }
    func run() { gate.pass() }
}

/// Holds a run until released (10 s at most).
final class RunGate: Sendable {
    private let entered = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)
    init() {}
    func pass() {
        entered.signal()
        _ = released.wait(timeout: .now() + 10)
    }
    @discardableResult
    func waitUntilHeld() -> Bool { entered.wait(timeout: .now() + 10) == .success }
    func release() { released.signal() }
}
