import Dispatch
import Foundation
import Glibc
import IRQEmu
import Synchronization

/// Runs `body` in a task and waits for it on the calling thread (irqbench's own thread,
/// never a thread of the concurrency pool).
func awaitTask<R: Sendable>(_ body: @escaping @Sendable () async -> R) -> R {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<R?>(nil)
    Task {
        let value = await body()
        result.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    return result.withLock { $0! }
}

// MARK: - async_latency

struct AsyncLatencyRow: Codable {
    /// `async` (`await RCU.synchronize()` from a task) or `blocking` (`RCU.synchronize()` on
    /// a thread).
    let mode: String
    let readers: Int
    let p50_us: Double
    let p99_us: Double
    let p50_us_min: Double
    let p50_us_max: Double
    let samples: Int
    let repetitions: Int
}

/// One await with nothing else pending: sequential `await RCU.synchronize()` calls from one
/// task, each starting after the previous returned, beside the blocking `synchronize()`
/// from a thread, in alternating blocks of the same run, with no readers and with 2.
enum AsyncLatencyBenchmark {
    static func run(repetitions: Int, count: Int) -> (rows: [AsyncLatencyRow], table: String) {
        struct Key: Hashable {
            let mode: String
            let readers: Int
        }
        var p50s: [Key: [Double]] = [:]
        var p99s: [Key: [Double]] = [:]
        let block = max(10, count / 10)
        for rep in 1...repetitions {
            progress("async_latency: repetition \(rep)/\(repetitions)")
            for readers in [0, 2] {
                let control = Control()
                let world = RCUWorld()
                let threads = (0..<readers).map { i in
                    try! KThread(name: "reader\(i)") { _ = readLoop(world, control) }
                }
                while control.started.load(ordering: .acquiring) < readers { sched_yield() }
                var blocking: [UInt64] = []
                var async: [UInt64] = []
                while async.count < count {
                    for _ in 0..<block {
                        let t0 = monotonicNanoseconds()
                        try! RCU.synchronize()
                        blocking.append(monotonicNanoseconds() - t0)
                    }
                    async += awaitTask {
                        var out: [UInt64] = []
                        out.reserveCapacity(block)
                        for _ in 0..<block {
                            let t0 = monotonicNanoseconds()
                            try! await RCU.synchronize()
                            out.append(monotonicNanoseconds() - t0)
                        }
                        return out
                    }
                }
                control.stop.store(true, ordering: .relaxed)
                for thread in threads { try! thread.join() }
                for (mode, samples) in [("async", async), ("blocking", blocking)] {
                    let h = histogram(samples)
                    let key = Key(mode: mode, readers: readers)
                    p50s[key, default: []].append(Double(h.valueAtPercentile(50)) / 1e3)
                    p99s[key, default: []].append(Double(h.valueAtPercentile(99)) / 1e3)
                }
            }
        }
        var rows: [AsyncLatencyRow] = []
        var table = Table(
            "async_latency: one await with nothing else pending (await RCU.synchronize() from a task) beside the blocking RCU.synchronize() on a thread; \(count) samples × \(repetitions), alternating blocks",
            ["mode", "readers", "p50 µs", "[min–max]", "p99 µs"])
        for readers in [0, 2] {
            for mode in ["async", "blocking"] {
                let key = Key(mode: mode, readers: readers)
                let p50 = Spread(p50s[key]!), p99 = Spread(p99s[key]!)
                rows.append(AsyncLatencyRow(
                    mode: mode, readers: readers, p50_us: p50.median, p99_us: p99.median, p50_us_min: p50.min,
                    p50_us_max: p50.max, samples: count, repetitions: repetitions))
                table.add([mode, "\(readers)", fmt(p50.median, 1), "[\(fmt(p50.min, 1))–\(fmt(p50.max, 1))]", fmt(p99.median, 1)])
            }
        }
        return (rows, table.render())
    }
}

// MARK: - async_revoke

struct AsyncRevokeRow: Codable {
    /// `async`: every revoke a concurrent await; `blocking`: blocking revokes from 2 threads.
    let mode: String
    let revokes: Int
    /// Revokes in flight at once: all of them (async), or the number of threads.
    let concurrency: Int
    /// Grace periods irqemu started (`RCU.gracePeriodsWaited`), median.
    let grace_periods: UInt64
    let grace_periods_min: UInt64
    let grace_periods_max: UInt64
    let seconds: Double
    let seconds_min: Double
    let seconds_max: Double
    /// Blocking seconds over async seconds, paired per repetition (async row only).
    let speedup: Spread?
    /// Swift's own cost for as many awaits, in the same repetitions with the same readers:
    /// 10,000 child tasks, each suspended on a continuation that a thread resumes, with no
    /// irqemu code (async row only), median seconds.
    let swift_floor_seconds: Double?
    let repetitions: Int
}

/// Continuations a thread resumes: the Swift floor of `AsyncRevokeBenchmark`.
private final class Resumer: Sendable {
    private let pending = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let resumed = Atomic<Int>(0)

    func add(_ continuation: CheckedContinuation<Void, Never>) { pending.withLock { $0.append(continuation) } }

    /// Resumes what was added until `count` have been, then returns.
    func run(until count: Int) {
        while resumed.load(ordering: .relaxed) < count {
            let batch = pending.withLock { list in
                defer { list = [] }
                return list
            }
            for continuation in batch { continuation.resume() }
            resumed.add(batch.count, ordering: .relaxed)
            if batch.isEmpty { usleep(20) }
        }
    }
}

/// Revoking 10,000 distinct RCU Revocables while 2 threads keep reading them: as 10,000
/// concurrent awaits (the grace periods shared), against blocking revokes from 2 threads.
enum AsyncRevokeBenchmark {
    struct Sample {
        let seconds: Double
        let gracePeriods: UInt64
    }

    enum Mode { case async, blocking, swiftFloor }

    static func measure(_ mode: Mode, count: Int) -> Sample {
        let revocables = (0..<count).map { Revocable(Payload($0), strategy: .rcu) }
        let control = Control()
        let readers = (0..<2).map { i in
            try! KThread(name: "reader\(i)") {
                // Borrowed, not copied out of the array (as the unbind section's readers): a
                // copy is a retain and a release outside the section on each.
                let all = revocables.map { unsafe Unmanaged.passUnretained($0) }
                control.started.add(1, ordering: .releasing)
                var sum = 0
                while !control.stop.load(ordering: .relaxed) {
                    for r in all {
                        // SAFETY: `revocables` keeps every Revocable alive until after the join.
                        sum &+= unsafe r._withUnsafeGuaranteedRef { $0.tryAccess { $0.value } } ?? 0
                    }
                }
                if sum == -1 { print(sum) }
            }
        }
        while control.started.load(ordering: .acquiring) < 2 { sched_yield() }
        let gracePeriods = RCU.gracePeriodsWaited
        let t0 = monotonicNanoseconds()
        switch mode {
        case .async:
            awaitTask {
                await withDiscardingTaskGroup { group in
                    for r in revocables { group.addTask { _ = try? await r.revoke() } }
                }
            }
        case .blocking:
            let writers = (0..<2).map { w in
                try! KThread(name: "revoker\(w)") {
                    for i in stride(from: w, to: count, by: 2) { _ = try? revocables[i].revoke() }
                }
            }
            for writer in writers { try! writer.join() }
        case .swiftFloor:
            let resumer = Resumer()
            let thread = try! KThread(name: "resumer") { resumer.run(until: count) }
            awaitTask {
                await withDiscardingTaskGroup { group in
                    for _ in 0..<count {
                        group.addTask { await withCheckedContinuation { resumer.add($0) } }
                    }
                }
            }
            try! thread.join()
        }
        let seconds = Double(monotonicNanoseconds() - t0) / 1e9
        let used = RCU.gracePeriodsWaited - gracePeriods
        control.stop.store(true, ordering: .relaxed)
        for reader in readers { try! reader.join() }
        precondition(mode == .swiftFloor || revocables.allSatisfy(\.isRevoked))
        return Sample(seconds: seconds, gracePeriods: used)
    }

    static func run(repetitions: Int, count: Int) -> (rows: [AsyncRevokeRow], table: String) {
        var samples: [Bool: [Sample]] = [:]
        var floor: [Double] = []
        for rep in 1...repetitions {
            progress("async_revoke: repetition \(rep)/\(repetitions)")
            // Alternate which goes first.
            for async in rep % 2 == 0 ? [true, false] : [false, true] {
                samples[async, default: []].append(measure(async ? .async : .blocking, count: count))
            }
            floor.append(measure(.swiftFloor, count: count).seconds)
        }
        let speedup = Spread(zip(samples[false]!, samples[true]!).map { $0.seconds / $1.seconds })
        let swiftFloor = Spread(floor)
        var rows: [AsyncRevokeRow] = []
        var table = Table(
            "async_revoke: \(count) distinct RCU Revocables revoked while 2 threads read them; median of \(repetitions), [min–max]; Swift floor: as many child tasks awaiting a continuation a thread resumes, no irqemu",
            ["mode", "concurrency", "grace periods", "[min–max]", "seconds", "[min–max]", "blocking ÷ async", "Swift floor s"])
        for async in [true, false] {
            let list = samples[async]!
            let gps = list.map(\.gracePeriods).sorted()
            let s = Spread(list.map(\.seconds))
            let concurrency = async ? count : 2
            rows.append(AsyncRevokeRow(
                mode: async ? "async" : "blocking", revokes: count, concurrency: concurrency,
                grace_periods: gps[gps.count / 2], grace_periods_min: gps.first!, grace_periods_max: gps.last!,
                seconds: s.median, seconds_min: s.min, seconds_max: s.max, speedup: async ? speedup : nil,
                swift_floor_seconds: async ? swiftFloor.median : nil, repetitions: list.count))
            table.add([
                async ? "async" : "blocking", "\(concurrency)", "\(gps[gps.count / 2])", "[\(gps.first!)–\(gps.last!)]",
                fmt(s.median, 4), "[\(fmt(s.min, 4))–\(fmt(s.max, 4))]", async ? ratioText(speedup, 1) : "",
                async ? fmt(swiftFloor.median, 4) : "",
            ])
        }
        return (rows, table.render())
    }
}

// MARK: - read_async_writer

struct ReadAsyncWriterRow: Codable {
    let strategy: String
    /// `blocking-paced`: a thread revokes 1,000 times a second, each revoke waited for;
    /// `async-paced`: the same pacing, each revoke started as a task and not waited for.
    let writer: String
    /// Revokes started per second, median.
    let writer_per_s: Double
    let writer_per_s_min: Double
    /// Reads per second of the 2 readers with the writer, median.
    let ops_per_s: Double
    /// The same readers with no writer, in the same slices, median.
    let no_writer_ops_per_s: Double
    /// ops_per_s ÷ no_writer_ops_per_s, paired per repetition.
    let kept: Spread
    /// Grace periods per second the writer caused (RCU), median.
    let grace_periods_per_s: Double
    let repetitions: Int
}

extension RCUWorld {
    /// Publishes a replacement and returns the old Revocable, still to be revoked (it stays
    /// alive, held by the caller, across its revoke's grace period).
    func exchange(_ n: Int) -> Revocable<Payload> {
        unsafe pointer.exchangeWithoutWaiting(Revocable(Payload(n), strategy: .rcu))!
    }
}

extension MutexWorld {
    func exchange(_ n: Int) -> Revocable<Payload> {
        let replacement = Revocable(Payload(n), strategy: .mutex)
        return slot.withLock { slot in
            defer { slot = replacement }
            return slot
        }
    }
}

/// 2 readers while a writer revokes 1,000 times a second, blocking-paced or async-paced,
/// against the same readers with no writer, in alternating slices.
enum ReadAsyncWriterBenchmark {
    static let writers = ["none", "blocking-paced", "async-paced"]
    static let strategies: [ReadStrategy] = [.rcu, .mutex]

    struct Sample {
        var reads: UInt64
        var writes: UInt64
        var seconds: Double
        var gracePeriods: UInt64
        var opsPerSecond: Double { Double(reads) / seconds }
        var writesPerSecond: Double { Double(writes) / seconds }
        static func + (a: Sample, b: Sample) -> Sample {
            Sample(
                reads: a.reads + b.reads, writes: a.writes + b.writes, seconds: a.seconds + b.seconds,
                gracePeriods: a.gracePeriods + b.gracePeriods)
        }
    }

    /// The async-paced writer: the blocking-paced writer's pacing (this thread sleeps until
    /// each millisecond of an absolute schedule), but each revoke is started as a task and
    /// not waited for: the old Revocable is published away and `Task { await old.revoke() }`
    /// starts its revoke. The two writers differ only in how they revoke. The revokes still
    /// running when the readers stop are waited for afterwards.
    static func measureAsyncWriter(_ strategy: ReadStrategy, rate: Double, duration: Double) -> Sample {
        let control = Control()
        let counts = Mutex<UInt64>(0)
        let rcuWorld = RCUWorld(), mutexWorld = MutexWorld()
        let threads = (0..<2).map { i in
            try! KThread(name: "reader\(i)") {
                let n = strategy == .rcu ? readLoop(rcuWorld, control) : readLoop(mutexWorld, control)
                counts.withLock { $0 &+= n }
            }
        }
        while control.started.load(ordering: .acquiring) < 2 { sched_yield() }
        let outstanding = Outstanding()
        let period = UInt64(1e9 / rate)
        let gracePeriods = RCU.gracePeriodsWaited
        let start = monotonicNanoseconds()
        let end = start + UInt64(duration * 1e9)
        var writes: UInt64 = 0
        while true {
            let next = start + (writes + 1) * period
            if next >= end { break }
            try! Deadline(nanoseconds: next).sleep()
            let old = strategy == .rcu ? rcuWorld.exchange(Int(writes)) : mutexWorld.exchange(Int(writes))
            outstanding.started()
            Task {
                _ = try? await old.revoke()
                outstanding.finished()
            }
            writes += 1
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        // Grace periods while the readers were measured (the drain's come after).
        let used = RCU.gracePeriodsWaited - gracePeriods
        control.stop.store(true, ordering: .relaxed)
        for thread in threads { try! thread.join() }
        outstanding.waitForAll()
        return Sample(reads: counts.withLock { $0 }, writes: writes, seconds: elapsed, gracePeriods: used)
    }

    static func measure(_ strategy: ReadStrategy, writer: String, duration: Double) -> Sample {
        switch writer {
        case "async-paced":
            return measureAsyncWriter(strategy, rate: 1_000, duration: duration)
        default:
            let gracePeriods = RCU.gracePeriodsWaited
            let s = measureRead(strategy, readers: 2, writerPerSecond: writer == "none" ? 0 : 1_000, duration: duration)
            return Sample(
                reads: s.reads, writes: s.writes, seconds: s.seconds, gracePeriods: RCU.gracePeriodsWaited - gracePeriods)
        }
    }

    static func run(repetitions: Int, duration: Double) -> (rows: [ReadAsyncWriterRow], table: String) {
        struct Key: Hashable {
            let strategy: ReadStrategy
            let writer: String
        }
        var samples: [Key: [Sample]] = [:]
        let configs = strategies.flatMap { s in writers.map { Key(strategy: s, writer: $0) } }
        // 250 ms slices, not the read section's 100 ms: each slice starts the writer afresh,
        // and a stream's first grace periods come before the grace-period thread sees it as
        // one (they start at once, as a lone await's does).
        let slices = max(2, Int((duration / 0.25).rounded()))
        for rep in 1...repetitions {
            progress("read_async_writer: repetition \(rep)/\(repetitions)")
            var sums: [Key: Sample] = [:]
            for slice in 0..<slices {
                for key in slice % 2 == 0 ? configs : configs.reversed() {
                    let s = measure(key.strategy, writer: key.writer, duration: duration / Double(slices))
                    sums[key] = sums[key].map { $0 + s } ?? s
                }
            }
            for (key, s) in sums { samples[key, default: []].append(s) }
        }
        var rows: [ReadAsyncWriterRow] = []
        var table = Table(
            "read_async_writer: 2 readers, a writer revoking 1,000/s (blocking-paced: waits for each; async-paced: starts one per ms without waiting), against the same readers with no writer in the same 250 ms slices; median of \(repetitions)",
            ["strategy", "writer", "writes/s", "GPs/s", "reads/s", "no-writer reads/s", "kept [min–max]"])
        for strategy in strategies {
            let none = samples[Key(strategy: strategy, writer: "none")]!
            for writer in writers where writer != "none" {
                let list = samples[Key(strategy: strategy, writer: writer)]!
                let kept = Spread(zip(list, none).map { $0.opsPerSecond / $1.opsPerSecond })
                let ops = Spread(list.map(\.opsPerSecond)), base = Spread(none.map(\.opsPerSecond))
                let wps = Spread(list.map(\.writesPerSecond))
                let gps = Spread(list.map { Double($0.gracePeriods) / $0.seconds })
                rows.append(ReadAsyncWriterRow(
                    strategy: strategy.rawValue, writer: writer, writer_per_s: wps.median, writer_per_s_min: wps.min,
                    ops_per_s: ops.median, no_writer_ops_per_s: base.median, kept: kept, grace_periods_per_s: gps.median,
                    repetitions: list.count))
                table.add([
                    strategy.rawValue, writer, fmt(wps.median, 0), fmt(gps.median, 0), mps(ops.median), mps(base.median),
                    "\(fmt(kept.median * 100, 1))% [\(fmt(kept.min * 100, 1))–\(fmt(kept.max * 100, 1))]",
                ])
            }
        }
        return (rows, table.render())
    }
}

/// Revokes started and not yet finished, waited for from a thread.
private final class Outstanding: Sendable {
    private let count = Atomic<Int>(0)
    func started() { count.add(1, ordering: .relaxed) }
    func finished() { count.subtract(1, ordering: .releasing) }
    func waitForAll() { while count.load(ordering: .acquiring) > 0 { usleep(100) } }
}
