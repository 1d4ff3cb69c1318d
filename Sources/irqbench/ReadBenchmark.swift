import CBaselines
import Foundation
import Glibc
import IRQEmu
import KernelRuntime
import RCU
import Synchronization

/// What the readers read: a small class instance, as a driver's data would be.
final class Payload: Sendable {
    let value: Int
    init(_ value: Int) { self.value = value }
}

/// Stop flag and start barrier shared with reader threads.
final class Control: Sendable {
    let stop = Atomic<Bool>(false)
    let started = Atomic<Int>(0)
    init() {}
}

/// Where readers get the Revocable they read, and how a writer replaces it.
protocol ReadWorld: Sendable {
    /// Reads between checks of the stop flag: a constant, as in the C baselines' loops (1024
    /// for RCU, 64 for the mutex). Passed at run time instead, it made the compiler reload
    /// the Revocable from the stack on every read: 1.36–1.40× C's read cost, against
    /// 1.05–1.16× as a constant (measured).
    static var batch: Int { get }
    /// Batches between a cooperative reader's `sched_yield()` calls (about 100 µs of reads;
    /// the C baselines use the same counts).
    static var batchesPerYield: Int { get }
    func current() -> Revocable<Payload>
    func write(_ n: Int)
}

/// The RCU world: readers read a Revocable until it is revoked, then pick up its
/// replacement through an RCU pointer. A write revokes the current one (one grace period)
/// after publishing the replacement.
final class RCUWorld: ReadWorld {
    static var batch: Int { 1024 }
    static var batchesPerYield: Int { 64 }
    let pointer = RCUPointer<Revocable<Payload>>(Revocable(Payload(1), strategy: .rcu))

    @inline(__always)
    func current() -> Revocable<Payload> { pointer.read { $0! } }

    func write(_ n: Int) {
        let replacement = Revocable(Payload(n), strategy: .rcu)
        // The old one stays alive (held here) across its revoke's grace period.
        let old = unsafe pointer.exchangeWithoutWaiting(replacement)!
        _ = try? old.revoke()
    }
}

/// Alice's world: the same, with mutex Revocables and a mutex-protected pointer: no grace
/// period anywhere.
final class MutexWorld: ReadWorld {
    static var batch: Int { 64 }
    static var batchesPerYield: Int { 16 }
    let slot = PthreadLocked(Revocable(Payload(1), strategy: .mutex))

    func current() -> Revocable<Payload> { slot.withLock { $0 } }

    func write(_ n: Int) {
        let replacement = Revocable(Payload(n), strategy: .mutex)
        let old = slot.withLock { slot in
            defer { slot = replacement }
            return slot
        }
        _ = try? old.revoke()
    }
}

/// How readers treat the CPU they share with the writer.
protocol ReaderScheduling {
    /// Whether a reader calls `sched_yield()` every `World.batchesPerYield` batches.
    static var yields: Bool { get }
}

/// Readers the scheduler may preempt anywhere, inside a read-side section too: userspace's
/// default, and the `read` section's rows.
enum Preemptible: ReaderScheduling { static var yields: Bool { false } }

/// Readers that offer the CPU only between sections (`sched_yield()`, the userspace
/// stand-in for a kernel reader's `cond_resched()`), while the writer (only it) runs
/// `SCHED_BATCH`, which does not preempt on wake-up: a reader is then rarely preempted
/// inside a section (a tick still can), as in a kernel whose `rcu_read_lock()` disables
/// preemption. The yields cost the readers of every strategy a system call per ~100 µs.
enum Cooperative: ReaderScheduling { static var yields: Bool { true } }

/// A reader: reads the current Revocable until it is revoked, then picks up the
/// replacement. Counts reads, revoked ones included. Checks the stop flag every
/// `World.batch` reads.
@inline(never)
func readLoop<World: ReadWorld, Scheduling: ReaderScheduling>(
    _ world: World, _ control: Control, _: Scheduling.Type = Preemptible.self
) -> UInt64 {
    let batch = World.batch
    var current = world.current()
    var reads: UInt64 = 0
    var sum = 0
    var batches = 0
    control.started.add(1, ordering: .releasing)
    while !control.stop.load(ordering: .relaxed) {
        var k = 0
        var revoked = false
        while k < batch {
            guard let value = current.tryAccess({ $0.value }) else {
                revoked = true
                break
            }
            sum &+= value
            k += 1
        }
        reads &+= UInt64(k)
        if revoked {
            reads &+= 1
            current = world.current()
        }
        if Scheduling.yields {
            batches += 1
            if batches == World.batchesPerYield {
                sched_yield()
                batches = 0
            }
        }
    }
    return reads &+ (sum == -1 ? 1 : 0)
}

/// One measurement of the read side.
struct ReadSample {
    let reads: UInt64
    let writes: UInt64
    let seconds: Double
    let readers: Int
    /// CPU time the writer thread used, sleeps excluded.
    let writerCPUNanoseconds: UInt64
    var opsPerSecond: Double { Double(reads) / seconds }
    /// Time per read on each reader thread.
    var nsPerOp: Double { seconds * 1e9 * Double(readers) / Double(reads) }
    var writesPerSecond: Double { Double(writes) / seconds }
    /// The writer's CPU time per write, in µs; nil without writes.
    var writerCPUMicrosecondsPerWrite: Double? {
        writes == 0 ? nil : Double(writerCPUNanoseconds) / Double(writes) / 1e3
    }
}

extension ReadSample {
    /// A C baseline's run of `readers` readers.
    init(_ r: cb_read_result, readers: Int) {
        self.init(
            reads: r.reads, writes: r.writes, seconds: Double(r.elapsed_ns) / 1e9, readers: readers,
            writerCPUNanoseconds: r.writer_cpu_ns)
    }

    static func + (a: ReadSample, b: ReadSample) -> ReadSample {
        ReadSample(
            reads: a.reads + b.reads, writes: a.writes + b.writes, seconds: a.seconds + b.seconds, readers: a.readers,
            writerCPUNanoseconds: a.writerCPUNanoseconds + b.writerCPUNanoseconds)
    }
}

/// A strategy with a number of reader threads.
struct ReadConfig: Hashable {
    let strategy: ReadStrategy
    let readers: Int
}

/// One repetition of `configs`, run in alternating slices of about 100 ms (each
/// configuration's sample sums its slices): this VM switches between a fast and a slow
/// phase within seconds, and slices put the baselines and the subjects in the same mix.
/// The order reverses every slice (ABC CBA ABC …), so neither a position nor a drift favours
/// one. A paced writer starts its schedule afresh in each slice; its achieved rate is
/// reported.
func measureInterleaved(
    _ configs: [ReadConfig], writerPerSecond: Double, cooperative: Bool = false, duration: Double
) -> [ReadConfig: ReadSample] {
    let slices = max(2, Int((duration / 0.1).rounded()))
    var out: [ReadConfig: ReadSample] = [:]
    for slice in 0..<slices {
        for config in slice % 2 == 0 ? configs : configs.reversed() {
            let s = measureRead(
                config.strategy, readers: config.readers, writerPerSecond: writerPerSecond, cooperative: cooperative,
                duration: duration / Double(slices))
            out[config] = out[config].map { $0 + s } ?? s
        }
    }
    return out
}

enum ReadStrategy: String {
    case cURCU = "c-urcu", rcu, mutex
    /// A bare pthread mutex in C, the same scheme as `mutex`: the sweep's check that the
    /// mutex figures are the lock's, not the library's.
    case cMutex = "c-mutex"
    /// `c-urcu`'s loop with irqemu's per-read registration check added (no writer only):
    /// the `read_check` section's measure of what the check costs in C.
    case cURCUChecked = "c-urcu-checked"

    /// The sweep's strategies.
    static let sweep: [ReadStrategy] = [.cURCU, .rcu, .mutex, .cMutex]

    /// The `read` section's strategies (its JSON names exactly these three).
    static let read: [ReadStrategy] = [.cURCU, .rcu, .mutex]
}

/// Runs `readers` reader threads for `duration` seconds with a writer at `writerPerSecond`
/// (0 none, < 0 unpaced) on the calling thread; `cooperative`: see `Cooperative`.
func measureRead(
    _ strategy: ReadStrategy, readers: Int, writerPerSecond: Double, cooperative: Bool = false, duration: Double
) -> ReadSample {
    if strategy == .cURCUChecked {
        precondition(writerPerSecond == 0 && !cooperative, "c-urcu-checked runs without a writer")
        return ReadSample(cb_read_run_checked(Int32(readers), UInt64(duration * 1e9)), readers: readers)
    }
    if strategy == .cURCU || strategy == .cMutex {
        let run = strategy == .cURCU ? cb_read_run : cb_mutex_read_run
        let batchesPerYield = strategy == .cURCU ? RCUWorld.batchesPerYield : MutexWorld.batchesPerYield
        let r = run(Int32(readers), writerPerSecond, cooperative ? Int32(batchesPerYield) : 0, UInt64(duration * 1e9))
        return ReadSample(r, readers: readers)
    }
    let control = Control()
    let counts = Mutex<UInt64>(0)
    let rcuWorld = RCUWorld()
    let mutexWorld = MutexWorld()
    let threads = (0..<readers).map { i in
        try! KThread(name: "reader\(i)") {
            let n = switch (strategy == .rcu, cooperative) {
            case (true, false): readLoop(rcuWorld, control)
            case (true, true): readLoop(rcuWorld, control, Cooperative.self)
            case (false, false): readLoop(mutexWorld, control)
            case (false, true): readLoop(mutexWorld, control, Cooperative.self)
            }
            counts.withLock { $0 &+= n }
        }
    }
    while control.started.load(ordering: .acquiring) < readers { sched_yield() }
    // Only the writer: the readers, already started, keep the default policy (as in C).
    if cooperative { setSchedulingPolicy(schedBatch) }
    defer { if cooperative { setSchedulingPolicy(SCHED_OTHER) } }
    let start = monotonicNanoseconds()
    let cpuStart = threadCPUNanoseconds()
    let end = start + UInt64(duration * 1e9)
    var writes: UInt64 = 0
    let period = writerPerSecond > 0 ? UInt64(1e9 / writerPerSecond) : 0
    while true {
        let now = monotonicNanoseconds()
        if now >= end { break }
        if writerPerSecond == 0 {
            try! Deadline(nanoseconds: end).sleep()
            continue
        }
        if period > 0 {
            try! Deadline(nanoseconds: min(end, start + (writes + 1) * period)).sleep()
            if monotonicNanoseconds() >= end { break }
        }
        if strategy == .rcu { rcuWorld.write(Int(writes)) } else { mutexWorld.write(Int(writes)) }
        writes += 1
    }
    let elapsed = Double(monotonicNanoseconds() - start) / 1e9
    let writerCPU = threadCPUNanoseconds() - cpuStart
    control.stop.store(true, ordering: .relaxed)
    for thread in threads { try! thread.join() }
    return ReadSample(
        reads: counts.withLock { $0 }, writes: writes, seconds: elapsed, readers: readers, writerCPUNanoseconds: writerCPU)
}

/// Linux's `SCHED_BATCH` (glibc declares it only under `_GNU_SOURCE`).
let schedBatch: Int32 = 3

/// Sets the calling thread's scheduling policy (`SCHED_BATCH` or `SCHED_OTHER`, priority 0).
func setSchedulingPolicy(_ policy: Int32) {
    var param = sched_param()
    if sched_setscheduler(0, policy, &param) != 0 {
        progress("irqbench: sched_setscheduler(\(policy)) failed: errno \(errno)")
    }
}

/// CPU time the calling thread has used, in ns.
func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

// MARK: - The sections

struct ReadRow: Codable {
    let strategy: String
    let readers: Int
    let writer: String
    let writer_per_s: Double
    let ns_per_op: Double
    let ops_per_s: Double
    let ns_per_op_min: Double
    let ns_per_op_max: Double
    let ops_per_s_min: Double
    let ops_per_s_max: Double
    let writer_per_s_min: Double
    let writer_per_s_max: Double
    /// The writer thread's CPU time per write (median), µs; nil without a writer.
    let writer_cpu_us_per_write: Double?
    /// ns/op over C's in the same repetition: median, min, max of those paired ratios.
    let ratio_to_c: Double
    let ratio_to_c_min: Double
    let ratio_to_c_max: Double
    /// Reads/s over the Swift mutex's in the same repetition (rcu and c-urcu rows).
    let over_mutex: Spread?
    /// Reads/s over the same strategy's with 1 reader in the same repetition (2-reader rows).
    let over_one_reader: Spread?
    let repetitions: Int
}

struct ReadCheckRow: Codable {
    let strategy: String
    let readers: Int
    let ns_per_op: Double
    let ns_per_op_min: Double
    let ns_per_op_max: Double
    /// ns/op over c-urcu's in the same repetition.
    let ratio_to_c: Spread
    /// ns/op over c-urcu-checked's in the same repetition.
    let ratio_to_c_checked: Spread
    let repetitions: Int
}

struct SweepRow: Codable {
    let strategy: String
    let readers: Int
    let writer_target_per_s: Double
    let writer_per_s: Double
    let ops_per_s: Double
    let ops_per_s_min: Double
    let ops_per_s_max: Double
    let writer_per_s_min: Double
    let writer_per_s_max: Double
    /// The writer thread's CPU time per write (median), µs; nil without a writer.
    let writer_cpu_us_per_write: Double?
    /// Reads/s over the mutex's in the same repetition: rcu over mutex, c-urcu over c-mutex.
    let over_mutex: Spread?
    let repetitions: Int
}

/// A ratio taken per repetition (the interleaved samples of the same repetition), then
/// summarized: median, min and max.
private func paired(_ a: [ReadSample], _ b: [ReadSample], _ ratio: (ReadSample, ReadSample) -> Double) -> Spread {
    precondition(a.count == b.count)
    return Spread(zip(a, b).map(ratio))
}

/// `median×` and `[min–max]` of a ratio.
func ratioText(_ s: Spread, _ decimals: Int) -> String {
    "\(fmt(s.median, decimals))× [\(fmt(s.min, decimals))–\(fmt(s.max, decimals))]"
}

/// Median of the writer's CPU time per write over `samples`, µs; nil without writes.
private func writerCPU(_ samples: [ReadSample]) -> Double? {
    let values = samples.compactMap(\.writerCPUMicrosecondsPerWrite)
    return values.isEmpty ? nil : Spread(values).median
}

enum ReadBenchmark {
    struct Writer {
        let name: String
        let rate: Double
        var cooperative = false
        var readerCounts = [1, 2]
    }

    /// The JSON's `read` rows come from the first three; `paced-coop` rows (2 readers only:
    /// one reader leaves a CPU free, so nothing preempts it) go to `read_cooperative`.
    static let writers = [
        Writer(name: "none", rate: 0), Writer(name: "paced", rate: 1_000), Writer(name: "unpaced", rate: -1),
        Writer(name: "paced-coop", rate: 1_000, cooperative: true, readerCounts: [2]),
    ]

    static func run(repetitions: Int, duration: Double) -> (rows: [ReadRow], table: String) {
        struct Key: Hashable {
            let strategy: ReadStrategy
            let readers: Int
            let writer: String
        }
        var samples: [Key: [ReadSample]] = [:]
        for rep in 1...repetitions {
            progress("read: repetition \(rep)/\(repetitions)")
            for writer in writers {
                // 1 and 2 readers in the same slices: the scaling figure is a paired ratio too.
                let configs = writer.readerCounts.flatMap { readers in
                    ReadStrategy.read.map { ReadConfig(strategy: $0, readers: readers) }
                }
                let measured = measureInterleaved(
                    configs, writerPerSecond: writer.rate, cooperative: writer.cooperative, duration: duration)
                for (config, s) in measured {
                    samples[Key(strategy: config.strategy, readers: config.readers, writer: writer.name), default: []].append(s)
                }
            }
        }
        var rows: [ReadRow] = []
        var table = Table(
            "read: one Revocable read (lock, flag, value, unlock) per op; median of \(repetitions) (each in ~100 ms slices alternating the strategies), [min–max]",
            ["strategy", "readers", "writer", "writes/s", "writer CPU µs/write", "ns/op", "[min–max]", "reads/s",
             "× C ns/op [min–max]", "reads/s ÷ mutex", "2 readers ÷ 1"])
        for readers in [1, 2] {
            for writer in writers where writer.readerCounts.contains(readers) {
                func samplesOf(_ strategy: ReadStrategy, _ readers: Int) -> [ReadSample] {
                    samples[Key(strategy: strategy, readers: readers, writer: writer.name)]!
                }
                let c = samplesOf(.cURCU, readers)
                let mutex = samplesOf(.mutex, readers)
                for strategy in ReadStrategy.read {
                    let list = samplesOf(strategy, readers)
                    let ns = Spread(list.map(\.nsPerOp))
                    let ops = Spread(list.map(\.opsPerSecond))
                    let wps = Spread(list.map(\.writesPerSecond))
                    let cpu = writerCPU(list)
                    let toC = paired(list, c) { $0.nsPerOp / $1.nsPerOp }
                    let overMutex = strategy == .mutex ? nil : paired(list, mutex) { $0.opsPerSecond / $1.opsPerSecond }
                    let overOne = readers == 2 && writer.readerCounts.contains(1)
                        ? paired(list, samplesOf(strategy, 1)) { $0.opsPerSecond / $1.opsPerSecond } : nil
                    let row = ReadRow(
                        strategy: strategy.rawValue, readers: readers, writer: writer.name, writer_per_s: wps.median,
                        ns_per_op: ns.median, ops_per_s: ops.median, ns_per_op_min: ns.min, ns_per_op_max: ns.max,
                        ops_per_s_min: ops.min, ops_per_s_max: ops.max, writer_per_s_min: wps.min,
                        writer_per_s_max: wps.max, writer_cpu_us_per_write: cpu, ratio_to_c: toC.median,
                        ratio_to_c_min: toC.min, ratio_to_c_max: toC.max, over_mutex: overMutex,
                        over_one_reader: overOne, repetitions: list.count)
                    rows.append(row)
                    table.add([
                        strategy.rawValue, "\(readers)", writer.name, fmt(wps.median, 0), cpu.map { fmt($0, 1) } ?? "",
                        fmt(ns.median, 2), "[\(fmt(ns.min, 2))–\(fmt(ns.max, 2))]", mps(ops.median), ratioText(toC, 2),
                        overMutex.map { ratioText($0, 0) } ?? "", overOne.map { ratioText($0, 2) } ?? "",
                    ])
                }
            }
        }
        return (rows, table.render())
    }

    /// Where Swift's read cost over C's goes: C's loop, the same loop with irqemu's per-read
    /// registration check (`c-urcu-checked`), and the Swift read, interleaved in the same
    /// slices with no writer, at 1 and 2 readers. Ratios to `c-urcu` paired per repetition.
    static func check(repetitions: Int, duration: Double) -> (rows: [ReadCheckRow], table: String) {
        struct Key: Hashable {
            let strategy: ReadStrategy
            let readers: Int
        }
        let strategies: [ReadStrategy] = [.cURCU, .cURCUChecked, .rcu]
        var samples: [Key: [ReadSample]] = [:]
        for rep in 1...repetitions {
            progress("read_check: repetition \(rep)/\(repetitions)")
            let configs = [1, 2].flatMap { readers in strategies.map { ReadConfig(strategy: $0, readers: readers) } }
            for (config, s) in measureInterleaved(configs, writerPerSecond: 0, duration: duration) {
                samples[Key(strategy: config.strategy, readers: config.readers), default: []].append(s)
            }
        }
        var rows: [ReadCheckRow] = []
        var table = Table(
            "read_check: C's read loop with irqemu's per-read registration check (a thread-local load and a branch), no writer; median of \(repetitions), [min–max]",
            ["strategy", "readers", "ns/op", "[min–max]", "× c-urcu ns/op [min–max]", "× c-urcu-checked [min–max]"])
        for readers in [1, 2] {
            let c = samples[Key(strategy: .cURCU, readers: readers)]!
            let checked = samples[Key(strategy: .cURCUChecked, readers: readers)]!
            for strategy in strategies {
                let list = samples[Key(strategy: strategy, readers: readers)]!
                let ns = Spread(list.map(\.nsPerOp))
                let toC = paired(list, c) { $0.nsPerOp / $1.nsPerOp }
                let toChecked = paired(list, checked) { $0.nsPerOp / $1.nsPerOp }
                rows.append(ReadCheckRow(
                    strategy: strategy.rawValue, readers: readers, ns_per_op: ns.median, ns_per_op_min: ns.min,
                    ns_per_op_max: ns.max, ratio_to_c: toC, ratio_to_c_checked: toChecked, repetitions: list.count))
                table.add([
                    strategy.rawValue, "\(readers)", fmt(ns.median, 3), "[\(fmt(ns.min, 3))–\(fmt(ns.max, 3))]",
                    ratioText(toC, 3), ratioText(toChecked, 3),
                ])
            }
        }
        return (rows, table.render())
    }

    static let sweepRates: [Double] = [0, 100, 1_000, 10_000, -1]

    static func sweep(repetitions: Int, duration: Double) -> (rows: [SweepRow], table: String) {
        struct Key: Hashable {
            let strategy: ReadStrategy
            let rate: Double
        }
        var samples: [Key: [ReadSample]] = [:]
        for rep in 1...repetitions {
            progress("read_sweep: repetition \(rep)/\(repetitions)")
            for rate in sweepRates {
                let configs = ReadStrategy.sweep.map { ReadConfig(strategy: $0, readers: 2) }
                let measured = measureInterleaved(configs, writerPerSecond: rate, duration: duration)
                for (config, s) in measured { samples[Key(strategy: config.strategy, rate: rate), default: []].append(s) }
            }
        }
        var rows: [SweepRow] = []
        var table = Table(
            "read_sweep: 2 readers, writer rate swept; reads/s, median of \(repetitions) (c-mutex: the same scheme on a bare pthread mutex in C)",
            ["writer target/s", "strategy", "writes/s", "writer CPU µs/write", "reads/s", "[min–max]", "× c-urcu",
             "÷ its mutex [min–max]"])
        for rate in sweepRates {
            func samplesOf(_ strategy: ReadStrategy) -> [ReadSample] { samples[Key(strategy: strategy, rate: rate)]! }
            let c = Spread(samplesOf(.cURCU).map(\.opsPerSecond)).median
            // Paired per repetition: rcu over the Swift mutex, c-urcu over the C mutex.
            let mutexOf: [ReadStrategy: ReadStrategy] = [.rcu: .mutex, .cURCU: .cMutex]
            for strategy in ReadStrategy.sweep {
                let list = samplesOf(strategy)
                let ops = Spread(list.map(\.opsPerSecond))
                let wps = Spread(list.map(\.writesPerSecond))
                let cpu = writerCPU(list)
                let overMutex = mutexOf[strategy].map { mutex in
                    paired(list, samplesOf(mutex)) { $0.opsPerSecond / $1.opsPerSecond }
                }
                rows.append(SweepRow(
                    strategy: strategy.rawValue, readers: 2, writer_target_per_s: rate, writer_per_s: wps.median,
                    ops_per_s: ops.median, ops_per_s_min: ops.min, ops_per_s_max: ops.max,
                    writer_per_s_min: wps.min, writer_per_s_max: wps.max, writer_cpu_us_per_write: cpu,
                    over_mutex: overMutex, repetitions: list.count))
                table.add([
                    rate < 0 ? "unpaced" : fmt(rate, 0), strategy.rawValue, fmt(wps.median, 0),
                    cpu.map { fmt($0, 1) } ?? "", mps(ops.median),
                    "[\(mps(ops.min))–\(mps(ops.max))]", fmt(ops.median / c, 2) + "×",
                    overMutex.map { ratioText($0, 0) } ?? "",
                ])
            }
        }
        return (rows, table.render())
    }
}
