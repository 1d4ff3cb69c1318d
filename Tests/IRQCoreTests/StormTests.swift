import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// Bind → request → unbind cycles while another thread raises the lines as fast as it can.
@Suite(.timeLimit(.minutes(5)))
struct StormTests {
    final class Sentinel: Sendable {
        let freed = Atomic<Bool>(false)
        let lateRuns: Atomic<Int>
        /// Handler runs in progress: each lasts ~20 µs, so one that free_irq failed to wait
        /// for is still counted here when the test looks.
        let running = Atomic<Int>(0)
        init() { lateRuns = Atomic(0) }

        /// Marks free_irq as returned; returns the runs still in progress.
        func markFreed() -> Int {
            let inProgress = running.load(ordering: .sequentiallyConsistent)
            freed.store(true, ordering: .releasing)
            return inProgress
        }
    }

    /// Handler data that checks, on every run, that free_irq has not returned yet, and, when
    /// it is dropped, that its action is gone.
    final class StormHandler: Handler, ThreadedHandler {
        let sentinel: Sentinel
        let totals: Totals
        let controller: IRQController
        let irq: IRQNumber
        let name: String

        init(sentinel: Sentinel, totals: Totals, controller: IRQController, irq: IRQNumber, name: String) {
            self.sentinel = sentinel
            self.totals = totals
            self.controller = controller
            self.irq = irq
            self.name = name
            totals.created.add(1, ordering: .relaxed)
        }

        deinit {
            totals.dropped.add(1, ordering: .relaxed)
            if (try? controller.stats(irq).actions.contains(name)) != false {
                totals.droppedBeforeFree.add(1, ordering: .relaxed)
            }
        }

        private func run() {
            sentinel.running.add(1, ordering: .sequentiallyConsistent)
            if sentinel.freed.load(ordering: .acquiring) { sentinel.lateRuns.add(1, ordering: .relaxed) }
            totals.handled.add(1, ordering: .relaxed)
            _ = spin(upTo: 0.00002) { false }
            sentinel.running.subtract(1, ordering: .sequentiallyConsistent)
        }

        func handle(device: borrowing Device.Bound) -> IRQReturn {
            run()
            return .handled
        }

        func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn {
            run()
            return .wakeThread
        }

        func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
            run()
            return .handled
        }
    }

    final class Totals: Sendable {
        let created = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)
        let droppedBeforeFree = Atomic<Int>(0)
        let handled = Atomic<Int>(0)
        let lateRuns = Atomic<Int>(0)
        let runningAtFree = Atomic<Int>(0)
        let cycles = Atomic<Int>(0)
        init() {}
    }

    @Test(arguments: RevocationStrategy.allCases, [false, true])
    func stormKeepsTheLifetimeInvariants(strategy: RevocationStrategy, threaded: Bool) throws {
        let controller = try IRQController(cpus: 2)
        let lines = [try controller.addEventFDLine(), try controller.addSoftwareLine()]
        let totals = Totals()
        let stop = Atomic<Bool>(false)
        let storm = try! KThread(name: "storm") {
            while !stop.load(ordering: .relaxed) {
                for irq in lines { try? controller.raise(irq) }
            }
        }
        defer {
            stop.store(true, ordering: .relaxed)
            try! storm.join()
        }
        let cycles = Scale.iterations(150, tsan: 15)
        // Every cycle's sentinels, summed once the storm has stopped: a late run counts
        // whenever it happens.
        let allSentinels = Box<[Sentinel]>([])
        let flushed = try onThread(timeout: .seconds(240)) { () -> Bool in
            for cycle in 0..<cycles {
                let device = Device(name: "storm\(cycle)")
                let sentinels = lines.map { _ in Sentinel() }
                allSentinels.update { $0 += sentinels }
                let registrations = Box<[AnyObject]>([])
                try device.bind(ClosureDriver(probe: { bound in
                    for (i, irq) in lines.enumerated() {
                        let name = "storm\(cycle)-\(i)"
                        let handler = StormHandler(sentinel: sentinels[i], totals: totals, controller: controller, irq: irq, name: name)
                        let registration: AnyObject = threaded
                            ? try ThreadedRegistration(bound, controller: controller, irq: irq, name: name, strategy: strategy, handler: handler)
                            : try Registration(bound, controller: controller, irq: irq, name: name, strategy: strategy, handler: handler)
                        registrations.update { $0.append(registration) }
                    }
                }))
                usleep(1_000)
                if cycle % 3 == 0 {
                    // Drop the registrations first: free_irq runs at the drop.
                    registrations.set([])
                    for s in sentinels { totals.runningAtFree.add(s.markFreed(), ordering: .relaxed) }
                    _ = try device.unbind(mode: cycle % 2 == 0 ? .batched : .perObject)
                } else {
                    // Unbind while the registrations are still held elsewhere.
                    _ = try device.unbind(mode: cycle % 2 == 0 ? .batched : .perObject)
                    for s in sentinels { totals.runningAtFree.add(s.markFreed(), ordering: .relaxed) }
                    usleep(100)
                    registrations.set([])
                }
                totals.cycles.add(1, ordering: .relaxed)
            }
            stop.store(true, ordering: .relaxed)
            try! storm.join()
            // Deferred frees and threads woken by the last raises finish before the count.
            let flushed = (try? Reaper.shared.flush(timeout: .seconds(30))) != nil
            try controller.quiesce(timeout: .seconds(30))
            return flushed
        }
        for s in allSentinels.get() { totals.lateRuns.add(s.lateRuns.load(ordering: .relaxed), ordering: .relaxed) }
        let (late, created, dropped, early, handled) = (
            totals.lateRuns.load(ordering: .relaxed), totals.created.load(ordering: .relaxed),
            totals.dropped.load(ordering: .relaxed), totals.droppedBeforeFree.load(ordering: .relaxed),
            totals.handled.load(ordering: .relaxed))
        #expect(flushed)
        #expect(late == 0, "a handler ran after free_irq returned")
        #expect(totals.runningAtFree.load(ordering: .relaxed) == 0, "a handler was still running when free_irq returned")
        #expect(created == cycles * 2)
        #expect(dropped == created, "every handler's data dropped exactly once")
        #expect(early == 0, "handler data dropped before its free_irq")
        #expect(handled > cycles, "the storm delivered interrupts")
        print("storm[\(strategy), \(threaded ? "threaded" : "hard")]: \(cycles) cycles, \(handled) handler runs, \(late) late runs")
    }
}
