import IRQEmu
import Synchronization

/// Data whose release is observable: a generation number and a pattern that is ALIVE until
/// the data is released, then POISON. Released objects go to the quarantine, which keeps
/// them (never back to malloc) while the program runs, so a use after release reads poison
/// and is counted instead of crashing.
final class Guarded: ReleasableResource, @unchecked Sendable {
    // SAFETY: only atomics and immutable fields.
    static let alive: UInt64 = 0xA11C_E0A1_1CE0_A11C
    static let poison: UInt64 = 0xDEAD_BEEF_DEAD_BEEF

    let generation: UInt64
    let pattern = Atomic<UInt64>(Guarded.alive)
    let counter = Atomic<UInt64>(0)

    init(generation: UInt64) { self.generation = generation }

    /// Checks the data is alive and of `generation`; counts a violation if not.
    @inline(__always)
    func check(_ generation: UInt64, _ stats: Stats, _ what: StaticString) {
        if pattern.load(ordering: .acquiring) != Guarded.alive || self.generation != generation {
            stats.violation(what, generation: generation)
        }
    }

    /// A use: check, a little work, check again (so a release racing the use is seen).
    @inline(__always)
    func use(_ generation: UInt64, _ stats: Stats, _ what: StaticString) {
        check(generation, stats, what)
        var x: UInt64 = generation
        for _ in 0..<40 { x = x &* 6364136223846793005 &+ 1442695040888963407 }
        counter.add(x & 1, ordering: .relaxed)
        check(generation, stats, what)
    }

    /// Poisons the data and moves it to the quarantine. Called by Devres at release
    /// (`ReleasableResource`), or by hand for handler data.
    func releaseResource() {
        pattern.store(Guarded.poison, ordering: .releasing)
        Quarantine.shared.keep(self)
    }
}

/// Released objects, kept until the program exits.
final class Quarantine: Sendable {
    static let shared = Quarantine()
    private let kept = Mutex<[any Sendable & AnyObject]>([])
    func keep(_ object: any Sendable & AnyObject) { kept.withLock { $0.append(object) } }
    var count: Int { kept.withLock { $0.count } }
}

/// Counters the threads share, and the violations they found.
final class Stats: Sendable {
    let reads = Atomic<UInt64>(0)
    let unbinds = Atomic<UInt64>(0)
    let interrupts = Atomic<UInt64>(0)
    let violations = Atomic<UInt64>(0)
    let stalls = Atomic<UInt64>(0)
    /// Runs of the devices' bottom halves (work items).
    let workRuns = Atomic<UInt64>(0)
    let cycles = Atomic<UInt64>(0)
    /// When the run started (monotonic ns): violations are timed from it.
    let origin = Atomic<UInt64>(0)

    private struct Kind {
        let what: String
        var count: UInt64
        let firstAt: UInt64
        let firstGeneration: UInt64
    }
    private let kinds = Mutex<[Kind]>([])

    func violation(_ what: StaticString, generation: UInt64) {
        violations.add(1, ordering: .relaxed)
        let now = monotonicNanoseconds()
        let what = "\(what)"
        kinds.withLock { kinds in
            if let i = kinds.firstIndex(where: { $0.what == what }) {
                kinds[i].count += 1
            } else {
                kinds.append(Kind(what: what, count: 1, firstAt: now, firstGeneration: generation))
            }
        }
    }

    /// One line per kind of violation, in the order first seen: count, and when and in
    /// which generation it was first seen.
    var violationKinds: [String] {
        let origin = origin.load(ordering: .relaxed)
        return kinds.withLock { $0 }.map { kind in
            let at = Double(kind.firstAt &- min(kind.firstAt, origin)) / 1e9
            return "\(kind.what): \(fmtCount(kind.count)), first at \(String(format: "%.3f", at)) s (generation \(kind.firstGeneration))"
        }
    }
}
