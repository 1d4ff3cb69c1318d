import CBaselines
import Foundation
import Glibc
import IRQEmu
import Synchronization

struct IRQRow: Codable {
    let source: String
    let mode: String
    let p50_us: Double
    let p99_us: Double
    let p999_us: Double
    let irqs_per_s: Double
    let p50_us_min: Double
    let p50_us_max: Double
    let p99_us_min: Double
    let p99_us_max: Double
    let p999_us_min: Double
    let p999_us_max: Double
    let irqs_per_s_min: Double
    let irqs_per_s_max: Double
    let baseline: String
    /// p50 and irqs/s over the baseline's in the same repetition: median, min, max.
    let p50_ratio_to_baseline: Double
    let p50_ratio_min: Double
    let p50_ratio_max: Double
    let throughput_ratio_to_baseline: Double
    let throughput_ratio_min: Double
    let throughput_ratio_max: Double
    /// Allocations per interrupt in the measured window (library rows; the malloc
    /// interposer counts every thread).
    let allocations_per_irq: Double?
    let interrupts: Int
    let repetitions: Int
}

/// Interrupt latency (raise → handler entry) and closed-loop throughput, one interrupt
/// outstanding, per source and dispatcher mode, against C programs making the same calls.
enum IRQBenchmark {
    enum Source: String, CaseIterable {
        case eventfd, signal, timer, software
        /// An eventfd line requested through a `Registration` on a bound device (the handler
        /// gets its proof of boundness): shown against the raw `requestIRQ` eventfd row.
        case registration
        /// The raw eventfd row with a handler that takes two nested spinlocks, the lock
        /// validator on: its allocations per interrupt are the validator's on the hot path.
        case locked
        case cEventfd = "c-eventfd", cSignal = "c-signal", cTimerfd = "c-timerfd"

        var isBaseline: Bool { rawValue.hasPrefix("c-") }
        var baseline: Source {
            switch self {
            case .eventfd, .software: .cEventfd
            case .registration, .locked: .eventfd
            case .signal: .cSignal
            case .timer: .cTimerfd
            default: self
            }
        }
    }

    /// The registration row's handler: records the latency, as the raw row's closure does.
    final class ProbeHandler: Handler {
        let probe: Probe
        init(probe: Probe) { self.probe = probe }
        func handle(device: borrowing Device.Bound) -> IRQReturn {
            probe.record()
            return .handled
        }
    }

    /// What a handler shares with the raiser: the raise time, the count, the samples.
    final class Probe: @unchecked Sendable {
        // SAFETY: `samples` is written only by the handler (one dispatcher CPU, one
        // interrupt outstanding) and read after the run; `handled` orders the two.
        let raisedAt = Atomic<UInt64>(0)
        let handled = Atomic<Int>(0)
        let samples: UnsafeMutablePointer<UInt64>
        let capacity: Int
        init(capacity: Int) {
            self.capacity = capacity
            samples = .allocate(capacity: capacity)
            samples.initialize(repeating: 0, count: capacity)
        }
        deinit { samples.deallocate() }

        /// The handler's part: one sample, then the count the raiser waits for.
        @inline(__always)
        func record() {
            let now = monotonicNanoseconds()
            let k = handled.load(ordering: .relaxed)
            if k < capacity { samples[k] = now &- raisedAt.load(ordering: .acquiring) }
            handled.store(k + 1, ordering: .releasing)
        }
    }

    struct Sample {
        let latencies: [UInt64]
        let elapsedNs: UInt64
        let allocations: UInt64
    }

    static let warmup = 500

    /// The raiser runs on host CPU 0 and the dispatcher on CPU 1 (when there are two), for
    /// the library and the C baselines alike, so the scheduler's placement is not measured.
    static let pinned = KThread.hostCPUCount >= 2

    /// Runs `measure` on a thread pinned to host CPU 0.
    static func measurePinned(_ source: Source, mode: DispatchMode, count: Int) throws -> Sample {
        let result = Mutex<Result<Sample, any Error>?>(nil)
        let thread = try! KThread(name: "raiser") {
            if pinned { KThread.pinCurrent(toHostCPU: 0) }
            let r = Result { try measure(source, mode: mode, count: count) }
            result.withLock { $0 = r }
        }
        try! thread.join()
        return try result.withLock { $0! }.get()
    }

    static func measure(_ source: Source, mode: DispatchMode, count: Int) throws -> Sample {
        if source.isBaseline {
            var out = [UInt64](repeating: 0, count: count)
            let kind: cb_irq_kind = source == .cEventfd ? CB_IRQ_EVENTFD : source == .cSignal ? CB_IRQ_SIGNAL : CB_IRQ_TIMERFD
            let elapsed = out.withUnsafeMutableBufferPointer {
                cb_irq_run(kind, mode == .polling ? 1 : 0, SignalAllocator.range.upperBound, pinned ? 1 : -1, Int32(count), $0.baseAddress!)
            }
            return Sample(latencies: out, elapsedNs: elapsed, allocations: 0)
        }
        // The locked row measures the validator on the hot path: on for it alone.
        let validatorWas = Lockdep.isEnabled
        if source == .locked { Lockdep.isEnabled = true }
        defer { Lockdep.isEnabled = validatorWas }
        let controller = try IRQController(name: "bench", cpus: 1, mode: mode, hostCPUs: pinned ? [1] : nil)
        let irq: IRQNumber
        switch source {
        case .eventfd, .registration, .locked: irq = try controller.addEventFDLine()
        case .signal: irq = try controller.addSignalLine()
        case .timer: irq = try controller.addTimerLine()
        default: irq = try controller.addSoftwareLine()
        }
        let total = warmup + count
        let probe = Probe(capacity: total)
        let device = Device(name: "bench0", resources: [.irq(irq, on: controller)])
        if source == .registration {
            let registration = Mutex<Registration<ProbeHandler>?>(nil)
            try device.bind(ClosureDriver(name: "bench") { bound in
                let r = try Registration(try bound.irq(at: 0), name: "bench", handler: ProbeHandler(probe: probe))
                registration.withLock { $0 = r }
            })
        } else if source == .locked {
            let outer = SpinLock(0, key: LockClassKey("bench.irq_outer")), inner = SpinLock(0, key: LockClassKey("bench.irq_inner"))
            try controller.requestIRQ(irq, name: "bench") { _ in
                outer.withLock { _ in inner.withLock { $0 &+= 1 } }
                probe.record()
                return .handled
            }
        } else {
            try controller.requestIRQ(irq, name: "bench") { _ in
                probe.record()
                return .handled
            }
        }
        let fd = [.eventfd, .registration, .locked].contains(source) ? try controller.eventFD(of: irq) : -1
        let signal = source == .signal ? try controller.signal(of: irq) : 0
        let pid = getpid()
        var one: UInt64 = 1
        var allocationsAtStart: UInt64 = 0
        var start: UInt64 = 0
        for i in 0..<total {
            if i == warmup {
                allocationsAtStart = cb_allocations()
                start = monotonicNanoseconds()
            }
            probe.raisedAt.store(monotonicNanoseconds(), ordering: .releasing)
            switch source {
            case .eventfd, .registration, .locked: _ = write(fd, &one, 8)  // the device side: a plain eventfd write
            case .signal: kill(pid, signal)
            default: try controller.raise(irq)
            }
            while probe.handled.load(ordering: .acquiring) <= i {}
        }
        let elapsed = monotonicNanoseconds() - start
        let allocations = cb_allocations() - allocationsAtStart
        if source == .registration {
            _ = try device.unbind()
        } else {
            try controller.freeIRQ(irq)
        }
        controller.shutdown()
        let latencies = (warmup..<total).map { probe.samples[$0] }
        return Sample(latencies: latencies, elapsedNs: elapsed, allocations: allocations)
    }

    /// Whether the malloc interposer is linked and sees the Swift runtime's allocations:
    /// objects made here must move its count, or the "0 allocations" figures mean nothing.
    static func interposerCountsSwiftAllocations() -> Bool {
        guard cb_allocations_counted() != 0 else { return false }
        let before = cb_allocations()
        blackHole((0..<4).map { _ in AllocationProbe() })
        return cb_allocations() >= before + 4
    }

    final class AllocationProbe {}

    @_optimize(none)
    static func blackHole<T>(_ value: T) {}

    static func run(repetitions: Int, count: Int) throws -> (rows: [IRQRow], table: String, allocationsCounted: Bool) {
        struct Key: Hashable {
            let source: Source
            let mode: DispatchMode
        }
        struct Figures {
            var p50: [Double] = [], p99: [Double] = [], p999: [Double] = [], rate: [Double] = [], allocs: [Double] = []
        }
        var figures: [Key: Figures] = [:]
        // Each repetition alternates the library and the baselines in `chunks` slices, so
        // both see the same state of a machine whose wake-up latency drifts over seconds.
        let chunks = 5
        for rep in 1...repetitions {
            progress("irq: repetition \(rep)/\(repetitions)")
            for mode in DispatchMode.allCases {
                var samples: [Source: (latencies: [UInt64], elapsed: UInt64, allocations: UInt64)] = [:]
                for chunk in 0..<chunks {
                    // The order reverses every chunk, so neither side always goes first.
                    for source in chunk % 2 == 0 ? Source.allCases : Source.allCases.reversed() {
                        let s = try measurePinned(source, mode: mode, count: max(1, count / chunks))
                        var acc = samples[source] ?? ([], 0, 0)
                        acc.latencies += s.latencies
                        acc.elapsed += s.elapsedNs
                        acc.allocations += s.allocations
                        samples[source] = acc
                    }
                }
                for source in Source.allCases {
                    let s = samples[source]!
                    if getenv("IRQBENCH_DEBUG") != nil {
                        let slow = s.latencies.filter { $0 > 5_000 }.count
                        progress("  \(source.rawValue) \(mode): \(slow) of \(s.latencies.count) over 5 µs, mean \(s.latencies.reduce(0, +) / UInt64(s.latencies.count)) ns")
                    }
                    let h = histogram(s.latencies)
                    var f = figures[Key(source: source, mode: mode)] ?? Figures()
                    f.p50.append(Double(h.valueAtPercentile(50)) / 1e3)
                    f.p99.append(Double(h.valueAtPercentile(99)) / 1e3)
                    f.p999.append(Double(h.valueAtPercentile(99.9)) / 1e3)
                    f.rate.append(Double(s.latencies.count) / (Double(s.elapsed) / 1e9))
                    f.allocs.append(Double(s.allocations) / Double(s.latencies.count))
                    figures[Key(source: source, mode: mode)] = f
                }
            }
        }
        let counted = interposerCountsSwiftAllocations()
        var rows: [IRQRow] = []
        var table = Table(
            "irq: raise → handler entry, one interrupt outstanding; \(count) interrupts × \(repetitions), medians (JSON: min and max of every figure)",
            ["source", "mode", "p50 µs", "[min–max]", "p99 µs", "p99.9 µs", "irqs/s", "[min–max]", "baseline", "p50 × [min–max]",
             "irqs/s × [min–max]", "allocs/irq"])
        for mode in DispatchMode.allCases {
            for source in Source.allCases {
                let f = figures[Key(source: source, mode: mode)]!
                let b = figures[Key(source: source.baseline, mode: mode)]!
                let p50 = Spread(f.p50), p99 = Spread(f.p99), p999 = Spread(f.p999), rate = Spread(f.rate)
                let p50Ratio = Spread(zip(f.p50, b.p50).map { $0 / $1 })
                let rateRatio = Spread(zip(f.rate, b.rate).map { $0 / $1 })
                let allocs: Double? = source.isBaseline || !counted ? nil : f.allocs.max()!
                rows.append(IRQRow(
                    source: source.rawValue, mode: mode.rawValue, p50_us: p50.median, p99_us: p99.median,
                    p999_us: p999.median, irqs_per_s: rate.median, p50_us_min: p50.min, p50_us_max: p50.max,
                    p99_us_min: p99.min, p99_us_max: p99.max, p999_us_min: p999.min, p999_us_max: p999.max,
                    irqs_per_s_min: rate.min, irqs_per_s_max: rate.max, baseline: source.baseline.rawValue,
                    p50_ratio_to_baseline: p50Ratio.median, p50_ratio_min: p50Ratio.min, p50_ratio_max: p50Ratio.max,
                    throughput_ratio_to_baseline: rateRatio.median, throughput_ratio_min: rateRatio.min,
                    throughput_ratio_max: rateRatio.max, allocations_per_irq: allocs,
                    interrupts: count, repetitions: repetitions))
                table.add([
                    source.rawValue, mode.rawValue, fmt(p50.median, 2), "[\(fmt(p50.min, 2))–\(fmt(p50.max, 2))]",
                    fmt(p99.median, 2), fmt(p999.median, 2), fmt(rate.median, 0),
                    "[\(fmt(rate.min, 0))–\(fmt(rate.max, 0))]", source.isBaseline ? "" : source.baseline.rawValue,
                    source.isBaseline ? "" : ratioText(p50Ratio, 2), source.isBaseline ? "" : ratioText(rateRatio, 2),
                    allocs.map { fmt($0, 3) } ?? "",
                ])
            }
        }
        return (rows, table.render(), counted)
    }
}
