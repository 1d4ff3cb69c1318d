import CBaselines
import Foundation
import IRQEmu
import Synchronization

struct UnbindRow: Codable {
    let strategy: String
    let objects: Int
    let seconds: Double
    let seconds_min: Double
    let seconds_max: Double
    /// The most any repetition waited (and the fewest).
    let grace_periods: UInt64
    let grace_periods_min: UInt64
    let bytes_per_object: Double
    /// Per-object seconds over these seconds in the same repetition: median, min, max.
    let speedup_vs_per_object: Double
    let speedup_min: Double
    let speedup_max: Double
    let repetitions: Int
}

/// Unbinding a device that holds N Devres<Int> while two threads read them.
enum UnbindBenchmark {
    enum Way: String, CaseIterable {
        case batched = "rcu-batched"
        case perObject = "rcu-per-object"
        case mutex

        var strategy: RevocationStrategy { self == .mutex ? .mutex : .rcu }
        var mode: UnbindMode { self == .perObject ? .perObject : .batched }
    }

    final class Handles: @unchecked Sendable {
        // SAFETY: written once during probe, before the readers start; read-only after.
        var devres: [Devres<Int>] = []
        var bytesPerObject: Double = 0
    }

    struct BenchDriver: Driver {
        let count: Int
        let strategy: RevocationStrategy
        let handles: Handles
        var name: String { "bench-driver" }
        func probe(_ device: borrowing Device.Bound) throws {
            handles.devres.reserveCapacity(count)
            let before = cb_heap_in_use()
            for i in 0..<count { handles.devres.append(try Devres(device, i, strategy: strategy)) }
            let after = cb_heap_in_use()
            // The Devres and its bookkeeping, without the Int value itself.
            handles.bytesPerObject = Double(after &- before) / Double(count) - Double(MemoryLayout<Int>.size)
        }
    }

    struct Sample {
        let seconds: Double
        let gracePeriods: UInt64
        let bytesPerObject: Double
    }

    static func measure(_ way: Way, objects: Int) throws -> Sample {
        let device = Device(name: "bench")
        let handles = Handles()
        try device.bind(BenchDriver(count: objects, strategy: way.strategy, handles: handles))
        let control = Control()
        let readers = (0..<2).map { i in
            try! KThread(name: "unbind-reader\(i)") {
                // Borrowed, not copied out of the array: a copy is a retain and a release on
                // each Devres, atomic writes the two readers would fight over.
                let all = handles.devres.map { unsafe Unmanaged.passUnretained($0) }
                control.started.add(1, ordering: .releasing)
                var sum = 0
                while !control.stop.load(ordering: .relaxed) {
                    for devres in all {
                        // SAFETY: `handles.devres` keeps every Devres alive until after join.
                        sum &+= unsafe devres._withUnsafeGuaranteedRef { $0.tryAccess { $0 } } ?? 0
                    }
                }
                if sum == -1 { print(sum) }
            }
        }
        while control.started.load(ordering: .acquiring) < 2 { sched_yield() }
        usleep(2_000)
        let report = try device.unbind(mode: way.mode)
        control.stop.store(true, ordering: .relaxed)
        for reader in readers { try! reader.join() }
        return Sample(seconds: report.duration.seconds, gracePeriods: report.gracePeriods, bytesPerObject: handles.bytesPerObject)
    }

    static let sizes = [10, 100, 1_000, 10_000]

    static func run(repetitions: Int) throws -> (rows: [UnbindRow], table: String) {
        struct Key: Hashable {
            let way: Way
            let objects: Int
        }
        var samples: [Key: [Sample]] = [:]
        for rep in 1...repetitions {
            progress("unbind: repetition \(rep)/\(repetitions)")
            for objects in sizes {
                for way in rep % 2 == 0 ? Way.allCases : Way.allCases.reversed() {
                    samples[Key(way: way, objects: objects), default: []].append(try measure(way, objects: objects))
                }
            }
        }
        var rows: [UnbindRow] = []
        var table = Table(
            "unbind: a device with N Devres<Int>, two threads reading them; median of \(repetitions), [min–max]",
            ["strategy", "N", "seconds", "[min–max]", "grace periods", "bytes/Devres", "× faster than per-object [min–max]"])
        for objects in sizes {
            let perObject = samples[Key(way: .perObject, objects: objects)]!.map(\.seconds)
            for way in Way.allCases {
                let list = samples[Key(way: way, objects: objects)]!
                let seconds = Spread(list.map(\.seconds))
                let gps = list.map(\.gracePeriods)
                let bytes = Spread(list.map(\.bytesPerObject)).median
                let speedup = Spread(zip(perObject, list).map { $0 / $1.seconds })
                rows.append(UnbindRow(
                    strategy: way.rawValue, objects: objects, seconds: seconds.median, seconds_min: seconds.min,
                    seconds_max: seconds.max, grace_periods: gps.max()!, grace_periods_min: gps.min()!,
                    bytes_per_object: bytes, speedup_vs_per_object: speedup.median, speedup_min: speedup.min,
                    speedup_max: speedup.max, repetitions: list.count))
                table.add([
                    way.rawValue, fmt(Double(objects), 0), fmt(seconds.median, 6),
                    "[\(fmt(seconds.min, 6))–\(fmt(seconds.max, 6))]",
                    gps.min() == gps.max() ? "\(gps[0])" : "\(gps.min()!)–\(gps.max()!)", fmt(bytes, 0),
                    way == .perObject ? "1.0× (baseline)" : ratioText(speedup, 1),
                ])
            }
        }
        return (rows, table.render())
    }
}
