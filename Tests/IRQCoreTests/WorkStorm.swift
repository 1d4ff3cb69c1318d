import Foundation
@testable import DeviceModel
import IRQEmu
import Synchronization
import TestSupport

/// The bottom-half storm: many cycles of bind, request an IRQ whose hard handler queues
/// device-managed work (a plain item and a delayed one), and unbind, while another thread
/// raises the line as fast as it can. Each item checks its own invariants on every run.
enum WorkStorm {
    /// What every storm item checks on each run, and counts.
    final class Checks: Sendable {
        let data: Counted
        let cancelled = Atomic<Bool>(false)
        let unbound = Atomic<Bool>(false)
        let runsAfterCancel = Atomic<Int>(0)
        let lateRuns = Atomic<Int>(0)
        let deadDataRuns = Atomic<Int>(0)
        let runs = Atomic<Int>(0)

        init(counter: Counted.Counter) { data = Counted(counter: counter) }

        /// A run: its managed cancel and its device's unbind have not returned, and its data
        /// is alive.
        func run() {
            if cancelled.load(ordering: .acquiring) { runsAfterCancel.add(1, ordering: .relaxed) }
            if unbound.load(ordering: .acquiring) { lateRuns.add(1, ordering: .relaxed) }
            if !data.isAlive { deadDataRuns.add(1, ordering: .relaxed) }
            runs.add(1, ordering: .relaxed)
            _ = spin(upTo: 0.00002) { false }  // ~20 µs: a run the cancel missed is still running when looked for
        }
    }

    /// One cycle's plain item.
    final class Item: WorkItem {
        let work = Work(name: "storm")
        let checks: Checks
        init(counter: Counted.Counter) { checks = Checks(counter: counter) }
        func run() { checks.run() }
    }

    /// One cycle's delayed item (100 µs after the interrupt).
    final class TimerItem: DelayedWorkItem {
        let delayedWork = DelayedWork(name: "storm-timer")
        let checks: Checks
        init(counter: Counted.Counter) { checks = Checks(counter: counter) }
        func run() { checks.run() }
    }

    /// Queues both items from the hard handler.
    final class Handler: IRQEmu.Handler {
        let item: Item
        let timer: TimerItem
        let queue: Workqueue
        init(item: Item, timer: TimerItem, queue: Workqueue) {
            self.item = item
            self.timer = timer
            self.queue = queue
        }
        func handle(device: borrowing Device.Bound) -> IRQReturn {
            queue.enqueue(item)
            queue.queueDelayed(timer, delay: .microseconds(100))
            return .handled
        }
    }

    /// Which is registered first: the work (correct) or the Registration (reported).
    enum Order: String, Sendable, CaseIterable { case workFirst, registrationFirst }

    struct Outcome: Sendable {
        var runsAfterCancel = 0, lateRuns = 0, busyAtUnbind = 0, deadDataRuns = 0, runs = 0, created = 0, dropped = 0, reports = 0
        /// The distinct report headlines.
        var headlines: Set<String> = []
    }

    static func run(mode: UnbindMode, order: Order, cancel: ManagedWorkCancel, cycles: Int) throws -> Outcome {
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
        let headlines = Box<Set<String>>([])
        let checks = Box<[Checks]>([])
        let timers = Box<[TimerItem]>([])
        try onThread(timeout: .seconds(240)) {
            for cycle in 0..<cycles {
                let device = Device(name: "storm\(cycle)", resources: [.irq(irq, on: controller)])
                device.managedWorkCancel = cancel
                let item = Item(counter: counter)
                let timer = TimerItem(counter: counter)
                checks.update { $0 += [item.checks, timer.checks] }
                timers.update { $0.append(timer) }
                let afterCancel: @Sendable () -> Void = {
                    item.checks.cancelled.store(true, ordering: .releasing)
                    timer.checks.cancelled.store(true, ordering: .releasing)
                }
                try device.bind(ClosureDriver { bound in
                    let handler = Handler(item: item, timer: timer, queue: queue)
                    // "after-cancel" is released right after the work's cancel: from then on,
                    // no run may start.
                    if order == .workFirst {
                        try bound.device.addAction(bound, name: "after-cancel", afterCancel)
                        try bound.device.addWork(bound, item)
                        try bound.device.addWork(bound, timer)
                    }
                    try bound.device.register(bound, try Registration(try bound.irq(at: 0), name: "storm\(cycle)", handler: handler))
                    // A teardown step that takes a while (a device reset), released just
                    // before the IRQ is freed: in the handler-before-work order the handler
                    // keeps running, after the work's cancel, for at least this long.
                    try bound.device.addAction(bound, name: "reset") { usleep(500) }
                    if order == .registrationFirst {
                        try bound.device.addAction(bound, name: "after-cancel", afterCancel)
                        try bound.device.addWork(bound, item)
                        try bound.device.addWork(bound, timer)
                    }
                })
                usleep(2_000)  // the storm runs against the bound device
                _ = try device.unbind(mode: mode)
                item.checks.unbound.store(true, ordering: .releasing)
                timer.checks.unbound.store(true, ordering: .releasing)
                let busy = [item.work, timer.work].filter { $0.isPending || $0.isRunning }.count
                let reports = device.log.reports.count
                headlines.update { $0.formUnion(device.log.reports.map(\.headline)) }
                atUnbind.update { $0 = ($0.busy + busy, $0.reports + reports) }
            }
            stop.store(true, ordering: .relaxed)
            // A timer the broken cancel let a handler arm again would keep the queue busy.
            for timer in timers.get() { _ = try timer.cancelDelayedWorkSync() }
            try queue.flushQueue(timeout: .seconds(30))
            try Reaper.shared.flush(timeout: .seconds(30))
        }
        var outcome = Outcome()
        (outcome.busyAtUnbind, outcome.reports) = atUnbind.get()
        outcome.headlines = headlines.get()
        timers.set([])
        do {
            let all = checks.get()
            checks.set([])
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
}

/// The exit test's body: the storm, in both modes and orders, with the process's faults set
/// to delay work items and timers and stretch the handlers; exits 1 on a broken invariant.
func workStormWithFaults() {
    let faults = try! Faults(parsing: "seed=17,work=0.3:300us,timer=0.5:1ms,primary=0.05:20us,free=0.2:200us")
    FaultInjection.process = faults
    print("faults \(faults)")
    var failed = false
    for mode in UnbindMode.allCases {
        for order in WorkStorm.Order.allCases {
            let cycles = Scale.iterations(60, tsan: 8)
            guard let outcome = try? WorkStorm.run(mode: mode, order: order, cancel: .disableSync, cycles: cycles) else {
                print("storm [\(mode), \(order)] failed to run")
                failed = true
                continue
            }
            let broken = outcome.runsAfterCancel + outcome.lateRuns + outcome.busyAtUnbind + outcome.deadDataRuns != 0
                || outcome.created != 2 * cycles || outcome.dropped != outcome.created || outcome.runs < cycles / 10
            print("storm [\(mode), \(order)] with faults: \(cycles) cycles, \(outcome.runs) runs, \(outcome.runsAfterCancel) after cancel, \(outcome.lateRuns) late, \(outcome.busyAtUnbind) busy, dropped \(outcome.dropped)/\(outcome.created)\(broken ? " BROKEN" : "")")
            if broken { failed = true }
        }
    }
    print("timer lateness: \(Workqueue.timerLateness)")
    exit(failed ? 1 : 0)
}
