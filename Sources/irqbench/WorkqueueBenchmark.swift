import CBaselines
import Foundation
import Glibc
import IRQEmu
import Synchronization

struct WorkqueueRow: Codable {
    /// `irq-to-work` (irqemu: a hard handler queues a work item on `events`) or
    /// `c-irq-to-worker` (C: the same hops with a mutex and a condition variable).
    let path: String
    let p50_us: Double
    let p99_us: Double
    let items_per_s: Double
    let p50_us_min: Double
    let p50_us_max: Double
    let p99_us_min: Double
    let p99_us_max: Double
    let items_per_s_min: Double
    let items_per_s_max: Double
    let baseline: String?
    /// p50 and items/s over the baseline's in the same repetition: median, min, max.
    let p50_ratio_to_baseline: Double?
    let p50_ratio_min: Double?
    let p50_ratio_max: Double?
    let throughput_ratio_to_baseline: Double?
    let throughput_ratio_min: Double?
    let throughput_ratio_max: Double?
    /// Allocations per raise-to-run cycle, every thread (the malloc interposer); library
    /// rows only, the worst repetition.
    let allocations_per_item: Double?
    /// Allocations per enqueue made inside an RCU read-side section, and run (library row).
    let allocations_per_read_section_enqueue: Double?
    let items: Int
    let repetitions: Int
}

struct TimerRow: Codable {
    /// The delay each timer was armed for.
    let delay_us: Double
    /// From the delay's end to the start of the work item (the timer thread's wake, the
    /// queueing and the worker's wake): median and 99th percentile over every repetition.
    let run_late_p50_us: Double
    let run_late_p99_us: Double
    /// Whether any item ran before its delay had passed (never expected).
    let early: Int
    let samples: Int
}

struct TimerLatenessSummary: Codable {
    /// The library's own figure (`Workqueue.timerLateness`): from each timer's expiry to the
    /// moment the timer thread fired it, for every timer of the section (bucketed).
    let fired: UInt64
    let p50_us: Double
    let p99_us: Double
    let max_us: Double
}

/// Bottom halves: a raise to the start of the work item its hard handler queued, one item
/// outstanding, blocking dispatch, against a C program making the same hops; and the
/// delayed-work timer's lateness.
enum WorkqueueBenchmark {
    /// What a work item shares with the raiser (the IRQ benchmark's probe).
    final class BenchItem: WorkItem {
        let work = Work(name: "irqbench")
        let probe: IRQBenchmark.Probe
        init(probe: IRQBenchmark.Probe) { self.probe = probe }
        func run() { probe.record() }
    }

    final class DelayedBenchItem: DelayedWorkItem {
        let delayedWork = DelayedWork(name: "irqbench-timer")
        let expected = Atomic<UInt64>(0)
        let ranAt = Atomic<UInt64>(0)
        func run() { ranAt.store(monotonicNanoseconds(), ordering: .releasing) }
    }

    enum Path: String, CaseIterable {
        case irqToWork = "irq-to-work"
        case cIRQToWorker = "c-irq-to-worker"
    }

    struct Sample {
        let latencies: [UInt64]
        let elapsedNs: UInt64
        let allocations: UInt64
        let readSectionAllocations: UInt64
        let readSectionEnqueues: Int
    }

    /// Sets the workqueue's pools up as the baseline's threads are placed: one emulated CPU,
    /// its workers on host CPU 1 with the dispatcher (the raiser spins on CPU 0). Called
    /// before any queue exists.
    static func configurePools() {
        try? Workqueue.configure(cpus: 1, hostCPUs: IRQBenchmark.pinned ? [1] : nil, workersPerPool: 2)
    }

    static func measurePinned(_ path: Path, count: Int) throws -> Sample {
        let result = Mutex<Result<Sample, any Error>?>(nil)
        let thread = try! KThread(name: "raiser") {
            if IRQBenchmark.pinned { KThread.pinCurrent(toHostCPU: 0) }
            let r = Result { try measure(path, count: count) }
            result.withLock { $0 = r }
        }
        try! thread.join()
        return try result.withLock { $0! }.get()
    }

    static func measure(_ path: Path, count: Int) throws -> Sample {
        let pinned = IRQBenchmark.pinned
        if path == .cIRQToWorker {
            var out = [UInt64](repeating: 0, count: count)
            let elapsed = out.withUnsafeMutableBufferPointer {
                cb_workqueue_run(pinned ? 1 : -1, pinned ? 1 : -1, Int32(count), $0.baseAddress!)
            }
            return Sample(latencies: out, elapsedNs: elapsed, allocations: 0, readSectionAllocations: 0, readSectionEnqueues: 0)
        }
        let queue = Workqueue.system
        let controller = try IRQController(name: "bench", cpus: 1, mode: .blocking, hostCPUs: pinned ? [1] : nil)
        let irq = try controller.addEventFDLine()
        let warmup = IRQBenchmark.warmup
        let total = warmup + count
        let probe = IRQBenchmark.Probe(capacity: total)
        let item = BenchItem(probe: probe)
        try controller.requestIRQ(irq, name: "bench") { _ in
            queue.enqueue(item)
            return .handled
        }
        let fd = try controller.eventFD(of: irq)
        var one: UInt64 = 1
        var allocationsAtStart: UInt64 = 0
        var start: UInt64 = 0
        for i in 0..<total {
            if i == warmup {
                allocationsAtStart = cb_allocations()
                start = monotonicNanoseconds()
            }
            probe.raisedAt.store(monotonicNanoseconds(), ordering: .releasing)
            _ = write(fd, &one, 8)
            while probe.handled.load(ordering: .acquiring) <= i {}
        }
        let elapsed = monotonicNanoseconds() - start
        let allocations = cb_allocations() - allocationsAtStart
        try controller.freeIRQ(irq)
        controller.shutdown()
        // The same enqueue from a read-side section on this thread (no IRQ), one at a time.
        let readProbe = IRQBenchmark.Probe(capacity: 1)
        let readItem = BenchItem(probe: readProbe)
        let readCount = 200
        var readAllocations: UInt64 = 0
        for i in 0..<(readCount + 20) {
            if i == 20 { readAllocations = cb_allocations() }
            RCU.read { _ = queue.enqueue(readItem) }
            while readProbe.handled.load(ordering: .acquiring) <= i {}
        }
        readAllocations = cb_allocations() - readAllocations
        let latencies = (warmup..<total).map { probe.samples[$0] }
        return Sample(
            latencies: latencies, elapsedNs: elapsed, allocations: allocations, readSectionAllocations: readAllocations,
            readSectionEnqueues: readCount)
    }

    /// Arms `count` timers of `delay`, one at a time, and records how late each item ran.
    static func timerLateness(delay: Duration, count: Int) -> (late: [UInt64], early: Int) {
        let queue = Workqueue.systemUnbound
        let item = DelayedBenchItem()
        var late: [UInt64] = []
        late.reserveCapacity(count)
        var early = 0
        let delayNs = UInt64(delay.components.attoseconds / 1_000_000_000) + UInt64(delay.components.seconds) * 1_000_000_000
        for _ in 0..<count {
            item.ranAt.store(0, ordering: .relaxed)
            let armed = monotonicNanoseconds()
            queue.queueDelayed(item, delay: delay)
            // Sleep through the delay (a spinning measurer would hold a CPU the timer thread
            // and the worker need), then wait for the run.
            try? Deadline(nanoseconds: armed + delayNs).sleep()
            var ran: UInt64 = 0
            while true {
                ran = item.ranAt.load(ordering: .acquiring)
                if ran != 0 { break }
                sched_yield()
            }
            if ran < armed + delayNs { early += 1 } else { late.append(ran - armed - delayNs) }
        }
        return (late, early)
    }

    static func run(repetitions: Int, count: Int, timerCount: Int) throws
        -> (rows: [WorkqueueRow], timers: [TimerRow], summary: TimerLatenessSummary, table: String)
    {
        struct Figures {
            var p50: [Double] = [], p99: [Double] = [], rate: [Double] = [], allocs: [Double] = [], readAllocs: [Double] = []
        }
        var figures: [Path: Figures] = [:]
        let chunks = 5
        for rep in 1...repetitions {
            progress("workqueue: repetition \(rep)/\(repetitions)")
            var samples: [Path: (latencies: [UInt64], elapsed: UInt64, allocations: UInt64, read: UInt64, readCount: Int)] = [:]
            for chunk in 0..<chunks {
                for path in chunk % 2 == 0 ? Path.allCases : Path.allCases.reversed() {
                    let s = try measurePinned(path, count: max(1, count / chunks))
                    var acc = samples[path] ?? ([], 0, 0, 0, 0)
                    acc.latencies += s.latencies
                    acc.elapsed += s.elapsedNs
                    acc.allocations += s.allocations
                    acc.read += s.readSectionAllocations
                    acc.readCount += s.readSectionEnqueues
                    samples[path] = acc
                }
            }
            for path in Path.allCases {
                let s = samples[path]!
                let h = histogram(s.latencies)
                var f = figures[path] ?? Figures()
                f.p50.append(Double(h.valueAtPercentile(50)) / 1e3)
                f.p99.append(Double(h.valueAtPercentile(99)) / 1e3)
                f.rate.append(Double(s.latencies.count) / (Double(s.elapsed) / 1e9))
                f.allocs.append(Double(s.allocations) / Double(s.latencies.count))
                f.readAllocs.append(s.readCount == 0 ? 0 : Double(s.read) / Double(s.readCount))
                figures[path] = f
            }
        }
        let counted = IRQBenchmark.interposerCountsSwiftAllocations()
        var rows: [WorkqueueRow] = []
        var table = Table(
            "workqueue: raise → start of the work item the hard handler queued (events), blocking dispatch, one item outstanding; \(count) items × \(repetitions), medians",
            ["path", "p50 µs", "[min–max]", "p99 µs", "items/s", "[min–max]", "baseline", "p50 × [min–max]", "items/s × [min–max]", "allocs/item", "allocs/RCU enqueue"])
        let c = figures[.cIRQToWorker]!
        for path in Path.allCases {
            let f = figures[path]!
            let isBaseline = path == .cIRQToWorker
            let p50 = Spread(f.p50), p99 = Spread(f.p99), rate = Spread(f.rate)
            let p50Ratio = Spread(zip(f.p50, c.p50).map { $0 / $1 })
            let rateRatio = Spread(zip(f.rate, c.rate).map { $0 / $1 })
            let allocs: Double? = isBaseline || !counted ? nil : f.allocs.max()!
            let readAllocs: Double? = isBaseline || !counted ? nil : f.readAllocs.max()!
            rows.append(WorkqueueRow(
                path: path.rawValue, p50_us: p50.median, p99_us: p99.median, items_per_s: rate.median,
                p50_us_min: p50.min, p50_us_max: p50.max, p99_us_min: p99.min, p99_us_max: p99.max,
                items_per_s_min: rate.min, items_per_s_max: rate.max, baseline: isBaseline ? nil : Path.cIRQToWorker.rawValue,
                p50_ratio_to_baseline: isBaseline ? nil : p50Ratio.median, p50_ratio_min: isBaseline ? nil : p50Ratio.min,
                p50_ratio_max: isBaseline ? nil : p50Ratio.max,
                throughput_ratio_to_baseline: isBaseline ? nil : rateRatio.median,
                throughput_ratio_min: isBaseline ? nil : rateRatio.min, throughput_ratio_max: isBaseline ? nil : rateRatio.max,
                allocations_per_item: allocs, allocations_per_read_section_enqueue: readAllocs,
                items: count, repetitions: repetitions))
            table.add([
                path.rawValue, fmt(p50.median, 2), "[\(fmt(p50.min, 2))–\(fmt(p50.max, 2))]", fmt(p99.median, 2),
                fmt(rate.median, 0), "[\(fmt(rate.min, 0))–\(fmt(rate.max, 0))]", isBaseline ? "" : Path.cIRQToWorker.rawValue,
                isBaseline ? "" : ratioText(p50Ratio, 2), isBaseline ? "" : ratioText(rateRatio, 2),
                allocs.map { fmt($0, 3) } ?? "", readAllocs.map { fmt($0, 3) } ?? "",
            ])
        }
        // The delayed-work timer.
        var timers: [TimerRow] = []
        var timerTable = Table(
            "workqueue timer: a delayed item armed \(timerCount)× per delay (one at a time); lateness from the delay's end to the item's start",
            ["delay µs", "p50 late µs", "p99 late µs", "early", "samples"])
        for delay in [Duration.microseconds(100), .milliseconds(1)] {
            var all: [UInt64] = []
            var early = 0
            for _ in 0..<max(1, repetitions / 2) {
                let (late, e) = timerLateness(delay: delay, count: timerCount)
                all += late
                early += e
            }
            let h = histogram(all.isEmpty ? [0] : all)
            let row = TimerRow(
                delay_us: delay.seconds * 1e6, run_late_p50_us: Double(h.valueAtPercentile(50)) / 1e3,
                run_late_p99_us: Double(h.valueAtPercentile(99)) / 1e3, early: early, samples: all.count)
            timers.append(row)
            timerTable.add([fmt(row.delay_us, 0), fmt(row.run_late_p50_us, 1), fmt(row.run_late_p99_us, 1), "\(early)", "\(all.count)"])
        }
        let lateness = Workqueue.timerLateness
        let summary = TimerLatenessSummary(
            fired: lateness.fired, p50_us: lateness.p50.seconds * 1e6, p99_us: lateness.p99.seconds * 1e6,
            max_us: lateness.max.seconds * 1e6)
        var text = table.render() + timerTable.render()
        text += "  the timer thread's own lateness (expiry → fire, Workqueue.timerLateness): \(summary.fired) timers, p50 \(fmt(summary.p50_us, 1)) µs, p99 \(fmt(summary.p99_us, 1)) µs, max \(fmt(summary.max_us, 1)) µs\n"
        return (rows, timers, summary, text)
    }
}
