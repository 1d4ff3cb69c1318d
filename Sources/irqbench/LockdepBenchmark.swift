import CBaselines
import Foundation
import IRQEmu
import Synchronization

struct LockdepRow: Codable {
    /// `spinlock`, `mutex` (SleepingMutex), `revocable-mutex` (a mutex-strategy read) or
    /// `c-pthread`.
    let lock: String
    /// `on` or `off` (`Lockdep.isEnabled`); `-` for the C baseline.
    let validator: String
    /// Locks held by the thread while it takes the measured one, itself included.
    let depth: Int
    let ns_per_op: Double
    let ns_per_op_min: Double
    let ns_per_op_max: Double
    /// This row over the same lock with the validator off, per repetition: median.
    let ratio_to_off: Double?
    let repetitions: Int
}

/// The lock validator's cost: an uncontended acquire and release on a chain it already
/// knows, with the validator on and off in the same repetition, against a bare C pthread
/// mutex. The IRQ-state check (usage marking) is part of every acquisition.
enum LockdepBenchmark {
    enum Lock: String, CaseIterable {
        case spinlock, mutex
        case revocableMutex = "revocable-mutex"
    }

    /// ns per operation of `lock` at `depth`, over `iterations`, on the calling thread.
    static func measure(_ lock: Lock, depth: Int, iterations: Int) -> Double {
        switch lock {
        case .spinlock:
            let locks = (0..<3).map { SpinLock(0, key: LockClassKey("bench.spinlock\($0)")) }
            return nested(locks, depth: depth) { measured in
                timed(iterations) { measured.withLock { $0 &+= 1 } }
            }
        case .mutex:
            let locks = (0..<3).map { SleepingMutex(0, key: LockClassKey("bench.mutex\($0)")) }
            return nested(locks, depth: depth) { measured in
                timed(iterations) { _ = try? measured.withLock { $0 &+= 1 } }
            }
        case .revocableMutex:
            let outer = (0..<2).map { SleepingMutex(0, key: LockClassKey("bench.outer\($0)")) }
            let revocable = Revocable(1, strategy: .mutex)
            let body = { timed(iterations) { _ = revocable.tryAccess { $0 } } }
            switch depth {
            case 1: return body()
            default:
                return (try? outer[0].withLock { _ in
                    depth == 2 ? body() : ((try? outer[1].withLock { _ in body() }) ?? .nan)
                }) ?? .nan
            }
        }
    }

    /// Runs `body` with the measured lock at `depth`: the first `depth - 1` locks held.
    private static func nested<L: AnyObject>(_ locks: [L], depth: Int, _ body: (L) -> Double) -> Double {
        func hold(_ i: Int) -> Double {
            guard i < depth - 1 else { return body(locks[i]) }
            if let spin = locks[i] as? SpinLock<Int> { return spin.withLock { _ in hold(i + 1) } }
            if let mutex = locks[i] as? SleepingMutex<Int> { return (try? mutex.withLock { _ in hold(i + 1) }) ?? .nan }
            return .nan
        }
        return hold(0)
    }

    @inline(__always)
    private static func timed(_ iterations: Int, _ op: () -> Void) -> Double {
        for _ in 0..<1_000 { op() }  // warm: the chain is known before the clock starts
        let start = monotonicNanoseconds()
        for _ in 0..<iterations { op() }
        return Double(monotonicNanoseconds() - start) / Double(iterations)
    }

    static func run(repetitions: Int, iterations: Int) -> (rows: [LockdepRow], table: String) {
        struct Key: Hashable {
            let lock: String
            let validator: String
            let depth: Int
        }
        let collected = Mutex<[Key: [Double]]>([:])
        let wasEnabled = Lockdep.isEnabled
        let thread = try! KThread(name: "lockdep-bench") {
            var samples: [Key: [Double]] = [:]
            defer { collected.withLock { $0 = samples } }
            for rep in 1...repetitions {
                progress("lockdep: repetition \(rep)/\(repetitions)")
                // On and off alternate, in ABBA order, so both see the same machine.
                for validator in rep % 2 == 0 ? ["on", "off"] : ["off", "on"] {
                    Lockdep.isEnabled = validator == "on"
                    for lock in Lock.allCases {
                        for depth in [1, 3] {
                            let ns = measure(lock, depth: depth, iterations: iterations)
                            samples[Key(lock: lock.rawValue, validator: validator, depth: depth), default: []].append(ns)
                        }
                    }
                }
                for depth in [1, 3] {
                    let ns = Double(cb_pthread_lock_run(Int32(depth), UInt64(iterations))) / Double(iterations)
                    samples[Key(lock: "c-pthread", validator: "-", depth: depth), default: []].append(ns)
                }
            }
        }
        try! thread.join()
        Lockdep.isEnabled = wasEnabled
        let samples = collected.withLock { $0 }
        var rows: [LockdepRow] = []
        var table = Table(
            "lockdep: one uncontended acquire + release on a known chain, ns; \(iterations) ops × \(repetitions), medians",
            ["lock", "depth", "validator off", "validator on", "on ÷ off [min–max]", "c-pthread"])
        for lock in Lock.allCases {
            for depth in [1, 3] {
                let off = samples[Key(lock: lock.rawValue, validator: "off", depth: depth)] ?? []
                let on = samples[Key(lock: lock.rawValue, validator: "on", depth: depth)] ?? []
                let ratio = Spread(zip(on, off).map { $0 / $1 })
                let c = Spread(samples[Key(lock: "c-pthread", validator: "-", depth: depth)] ?? [0])
                for (validator, values) in [("off", off), ("on", on)] {
                    let s = Spread(values)
                    rows.append(LockdepRow(
                        lock: lock.rawValue, validator: validator, depth: depth, ns_per_op: s.median, ns_per_op_min: s.min,
                        ns_per_op_max: s.max, ratio_to_off: validator == "on" ? ratio.median : nil, repetitions: repetitions))
                }
                table.add([
                    lock.rawValue, "\(depth)", fmt(Spread(off).median, 1), fmt(Spread(on).median, 1), ratioText(ratio, 2),
                    fmt(c.median, 1),
                ])
            }
        }
        for depth in [1, 3] {
            let c = Spread(samples[Key(lock: "c-pthread", validator: "-", depth: depth)] ?? [0])
            rows.append(LockdepRow(
                lock: "c-pthread", validator: "-", depth: depth, ns_per_op: c.median, ns_per_op_min: c.min,
                ns_per_op_max: c.max, ratio_to_off: nil, repetitions: repetitions))
        }
        return (rows, table.render())
    }
}
