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
        let gate = Gate()
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

    // MARK: - The storm

    /// One cycle's work item: checks, on every run, that its managed cancel and its device's
    /// unbind have not returned, and that its data is alive.
    final class StormItem: WorkItem {
        let work = Work(name: "storm")
        let data: Counted
        let cancelled = Atomic<Bool>(false)
        let unbound = Atomic<Bool>(false)
        let runsAfterCancel = Atomic<Int>(0)
        let lateRuns = Atomic<Int>(0)
        let deadDataRuns = Atomic<Int>(0)
        let runs = Atomic<Int>(0)
        init(counter: Counted.Counter) { data = Counted(counter: counter) }
        func run() {
            if cancelled.load(ordering: .acquiring) { runsAfterCancel.add(1, ordering: .relaxed) }
            if unbound.load(ordering: .acquiring) { lateRuns.add(1, ordering: .relaxed) }
            if !data.isAlive { deadDataRuns.add(1, ordering: .relaxed) }
            runs.add(1, ordering: .relaxed)
            _ = spin(upTo: 0.00002) { false }  // ~20 µs: a run the cancel missed is still running when looked for
        }
    }

    final class StormHandler: Handler {
        let item: StormItem
        let queue: Workqueue
        init(item: StormItem, queue: Workqueue) {
            self.item = item
            self.queue = queue
        }
        func handle(device: borrowing Device.Bound) -> IRQReturn {
            queue.enqueue(item)
            return .handled
        }
    }

    enum Order: String, Sendable, CaseIterable { case workFirst, registrationFirst }

    struct StormOutcome: Sendable {
        var runsAfterCancel = 0, lateRuns = 0, busyAtUnbind = 0, deadDataRuns = 0, runs = 0, created = 0, dropped = 0, reports = 0
    }

    /// Bind, request an IRQ whose hard handler queues device-managed work, unbind: many
    /// cycles, while another thread raises the line as fast as it can.
    func storm(mode: UnbindMode, order: Order, cancel: ManagedWorkCancel, cycles: Int) throws -> StormOutcome {
        let controller = try IRQController(cpus: 2)
        let irq = try controller.addSoftwareLine()
        let queue = try Workqueue(name: "wq-storm", flags: .unbound)
        let counter = Counted.Counter()
        let stop = Atomic<Bool>(false)
        let raiser = try KThread(name: "raiser") {
            while !stop.load(ordering: .relaxed) { try? controller.raise(irq) }
        }
        defer {
            stop.store(true, ordering: .relaxed)
            try? raiser.join()
        }
        let atUnbind = Box<(busy: Int, reports: Int)>((0, 0))
        let items = Box<[StormItem]>([])
        try onThread(timeout: .seconds(240)) {
            for cycle in 0..<cycles {
                let device = Device(name: "storm\(cycle)", resources: [.irq(irq, on: controller)])
                device.managedWorkCancel = cancel
                let item = StormItem(counter: counter)
                items.update { $0.append(item) }
                try device.bind(ClosureDriver { bound in
                    let handler = StormHandler(item: item, queue: queue)
                    // "after-cancel" is released right after the work's cancel: from then on,
                    // no run may start.
                    if order == .workFirst {
                        try bound.device.addAction(bound, name: "after-cancel") { item.cancelled.store(true, ordering: .releasing) }
                        try bound.device.addWork(bound, item)
                    }
                    try bound.device.register(bound, try Registration(try bound.irq(at: 0), name: "storm\(cycle)", handler: handler))
                    // A teardown step that takes a while (a device reset), released just
                    // before the IRQ is freed: in the handler-before-work order the handler
                    // keeps running, after the work's cancel, for at least this long.
                    try bound.device.addAction(bound, name: "reset") { usleep(500) }
                    if order == .registrationFirst {
                        try bound.device.addAction(bound, name: "after-cancel") { item.cancelled.store(true, ordering: .releasing) }
                        try bound.device.addWork(bound, item)
                    }
                })
                usleep(2_000)  // the storm runs against the bound device
                _ = try device.unbind(mode: mode)
                item.unbound.store(true, ordering: .releasing)
                let busy = item.work.isPending || item.work.isRunning
                let reports = device.log.reports.count
                atUnbind.update { $0 = ($0.busy + (busy ? 1 : 0), $0.reports + reports) }
            }
            stop.store(true, ordering: .relaxed)
            try queue.flushQueue(timeout: .seconds(30))
            try Reaper.shared.flush(timeout: .seconds(30))
        }
        var outcome = StormOutcome()
        (outcome.busyAtUnbind, outcome.reports) = atUnbind.get()
        do {
            let all = items.get()
            items.set([])
            for item in all {
                outcome.runsAfterCancel += item.runsAfterCancel.load(ordering: .relaxed)
                outcome.lateRuns += item.lateRuns.load(ordering: .relaxed)
                outcome.deadDataRuns += item.deadDataRuns.load(ordering: .relaxed)
                outcome.runs += item.runs.load(ordering: .relaxed)
            }
        }
        try onThread { try queue.destroyQueue() }
        outcome.created = counter.createdCount
        // The test's own references are gone: every item's data must go, once each (a
        // worker gives the queue's last reference back just after the flush returns).
        _ = spin(upTo: 10) { counter.droppedCount == counter.createdCount }
        outcome.dropped = counter.droppedCount
        return outcome
    }

    /// With `disableWorkSync` (the default), in both orders and both unbind modes: no item
    /// runs, or is left pending or running, after its device's unbind returns; every item's
    /// data is dropped exactly once, after its last run. In the handler-before-work order
    /// the enqueue is reported (once per cycle).
    @Test(arguments: UnbindMode.allCases, Order.allCases)
    func managedWorkStormKeepsTheLifetimeInvariants(mode: UnbindMode, order: Order) throws {
        let cycles = Scale.iterations(120, tsan: 12)
        let outcome = try storm(mode: mode, order: order, cancel: .disableSync, cycles: cycles)
        #expect(outcome.runsAfterCancel == 0, "a work item ran after its managed cancel returned")
        #expect(outcome.lateRuns == 0, "a work item ran after its device's unbind returned")
        #expect(outcome.busyAtUnbind == 0, "a work item was pending or running when unbind returned")
        #expect(outcome.deadDataRuns == 0)
        #expect(outcome.runs >= cycles / 10, "the storm queued work")
        #expect(outcome.created == cycles)
        #expect(outcome.dropped == outcome.created, "every item's data dropped exactly once")
        if order == .registrationFirst {
            #expect(outcome.reports > 0 && outcome.reports <= cycles, "the handler-before-work order reported, once per device")
        } else {
            #expect(outcome.reports == 0)
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
        let outcome = try storm(mode: mode, order: .registrationFirst, cancel: .cancelSync, cycles: cycles)
        #expect(outcome.runsAfterCancel + outcome.lateRuns + outcome.busyAtUnbind > 0, "the re-queue after cancelWorkSync was caught")
        #expect(outcome.dropped == outcome.created, "data still dropped exactly once, after its last run")
        #expect(outcome.deadDataRuns == 0, "a queued item keeps its owner alive")
        print("workqueue storm [\(mode), cancelWorkSync]: \(cycles) cycles, \(outcome.runsAfterCancel) runs after the cancel, \(outcome.lateRuns) after unbind, \(outcome.busyAtUnbind) busy at unbind")
    }
}

/// An item that holds its run until released.
final class Blocker: WorkItem {
    let work = Work(name: "blocker")
    let gate: Gate
    init(_ gate: Gate) { self.gate = gate }
    func run() { gate.pass() }
}

/// Holds a run until released (10 s at most).
final class Gate: Sendable {
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
