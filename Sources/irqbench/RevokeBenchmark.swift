import CBaselines
import Foundation
import IRQEmu
import KernelRuntime
import RCU
import Synchronization

struct RevokeRow: Codable {
    let strategy: String
    let readers: Int
    let ns_p50: Double
    let ns_p99: Double
    let ns_p50_min: Double
    let ns_p50_max: Double
    let ns_p99_min: Double
    let ns_p99_max: Double
    let ratio_p50_to_c: Double
    let samples: Int
    let repetitions: Int
}

/// Latency of `revoke()` while readers read the Revocable being revoked; baseline: raw C
/// `synchronize_rcu` under the same number of C readers.
enum RevokeBenchmark {
    static func measure(_ strategy: ReadStrategy, readers: Int, count: Int) -> [UInt64] {
        if strategy == .cURCU {
            var out = [UInt64](repeating: 0, count: count)
            out.withUnsafeMutableBufferPointer { cb_synchronize_latency(Int32(readers), Int32(count), $0.baseAddress!) }
            return out
        }
        let control = Control()
        let rcuWorld = RCUWorld()
        let mutexWorld = MutexWorld()
        let threads = (0..<readers).map { i in
            try! KThread(name: "reader\(i)") {
                _ = strategy == .rcu ? readLoop(rcuWorld, control) : readLoop(mutexWorld, control)
            }
        }
        while control.started.load(ordering: .acquiring) < readers { sched_yield() }
        var out: [UInt64] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            switch strategy {
            case .rcu:
                let old = unsafe rcuWorld.pointer.exchangeWithoutWaiting(Revocable(Payload(i), strategy: .rcu))!
                let t0 = monotonicNanoseconds()
                _ = try? old.revoke()
                out.append(monotonicNanoseconds() - t0)
            case .mutex:
                let replacement = Revocable(Payload(i), strategy: .mutex)
                let old = mutexWorld.slot.withLock { slot in
                    defer { slot = replacement }
                    return slot
                }
                let t0 = monotonicNanoseconds()
                _ = try? old.revoke()
                out.append(monotonicNanoseconds() - t0)
            case .cURCU, .cMutex, .cURCUChecked:
                break  // measured above (C) or not part of this section
            }
        }
        control.stop.store(true, ordering: .relaxed)
        for thread in threads { try! thread.join() }
        return out
    }

    static func run(repetitions: Int, count: Int) -> (rows: [RevokeRow], table: String) {
        struct Key: Hashable {
            let strategy: ReadStrategy
            let readers: Int
        }
        var p50s: [Key: [Double]] = [:]
        var p99s: [Key: [Double]] = [:]
        for rep in 1...repetitions {
            progress("revoke: repetition \(rep)/\(repetitions)")
            for readers in [0, 2] {
                for strategy in ReadStrategy.read {
                    let h = histogram(measure(strategy, readers: readers, count: count))
                    let key = Key(strategy: strategy, readers: readers)
                    p50s[key, default: []].append(Double(h.valueAtPercentile(50)))
                    p99s[key, default: []].append(Double(h.valueAtPercentile(99)))
                }
            }
        }
        var rows: [RevokeRow] = []
        var table = Table(
            "revoke: latency of one revoke() (c-urcu: one synchronize_rcu) with readers reading it; \(count) samples × \(repetitions)",
            ["strategy", "readers", "p50 ns", "[min–max]", "p99 ns", "[min–max]", "p50 × c-urcu"])
        for readers in [0, 2] {
            let c = Spread(p50s[Key(strategy: .cURCU, readers: readers)]!)
            for strategy in ReadStrategy.read {
                let key = Key(strategy: strategy, readers: readers)
                let p50 = Spread(p50s[key]!)
                let p99 = Spread(p99s[key]!)
                rows.append(RevokeRow(
                    strategy: strategy.rawValue, readers: readers, ns_p50: p50.median, ns_p99: p99.median,
                    ns_p50_min: p50.min, ns_p50_max: p50.max, ns_p99_min: p99.min, ns_p99_max: p99.max, ratio_p50_to_c: p50.median / c.median,
                    samples: count, repetitions: repetitions))
                table.add([
                    strategy.rawValue, "\(readers)", fmt(p50.median, 0), "[\(fmt(p50.min, 0))–\(fmt(p50.max, 0))]",
                    fmt(p99.median, 0), "[\(fmt(p99.min, 0))–\(fmt(p99.max, 0))]", fmt(p50.median / c.median, 2) + "×",
                ])
            }
        }
        return (rows, table.render())
    }
}
