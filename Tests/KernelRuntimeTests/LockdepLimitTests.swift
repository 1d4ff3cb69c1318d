import Foundation
import Glibc
import KernelRuntime
import TestSupport
import Testing

/// `count` maps of distinct classes named `prefix-i`.
func maps(_ prefix: String, _ count: Int, type: LockdepMap.LockType = .spinlock) -> [LockdepMap] {
    (0..<count).map { LockdepMap(key: LockClassKey("\(prefix)-\($0)"), type: type) }
}

/// Tests that change the validator's process-wide state: its limits, its switch, a reset.
/// Each runs alone among the gated tests and leaves the validator reset, on, at the
/// kernel's limits.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct LockdepLimitTests {
    /// Runs `body` alone with the validator reset to `limits`, then resets it back.
    func alone(limits: Lockdep.Limits = .kernel, _ body: () -> Void) {
        LockdepGate.run(limits: limits, body)
    }

    // The tables' limits, made tiny, are the process's: another test's threads (kworkers
    // running items under their lockdep maps, IRQ threads) would fill them first. These run
    // in a child process (exit tests), where nothing else takes a lock.

    @Test func tooManyClassesSwitchTheValidatorOff() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) { tooManyClassesChild() }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.hasSuffix("ok\n"), "\(stderr)")
    }

    @Test func tooManyDependenciesSwitchTheValidatorOff() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) { tooManyDependenciesChild() }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.hasSuffix("ok\n"), "\(stderr)")
    }

    @Test func tooManyChainsSwitchTheValidatorOff() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) { tooManyChainsChild() }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.hasSuffix("ok\n"), "\(stderr)")
    }

    @Test func theFortyEighthNestedLockOverflowsTheDepth() {
        alone {
            let log = KernelLog(name: "depth")
            let all = maps("depth", 48)
            let depths = run("ld-depth", log) { () -> [Int] in
                var seen: [Int] = []
                for map in all {
                    Lockdep.acquire(map, function: "test", file: #fileID, line: #line)
                    seen.append(Lockdep.heldLockNames.count)
                }
                // Released newest first, including the one never recorded.
                for map in all.reversed() { Lockdep.release(map) }
                seen.append(Lockdep.heldLockNames.count)
                return seen
            }
            #expect(depths?.prefix(47).last == 47)
            #expect(depths?.last == 0)
            #expect(log.lockdepHeadlines == ["BUG: MAX_LOCK_DEPTH too low!"])
            let lines = log.reports.first?.lines ?? []
            #expect(lines.contains("turning off the locking correctness validator."))
            #expect(lines.contains("depth: 48  max: 48!"))
            #expect(lines.contains { $0.hasPrefix("47 locks held by ld-depth/") })
            #expect(!Lockdep.isActive)
        }
    }

    @Test func anInvalidSubclassSwitchesTheValidatorOff() {
        alone {
            let log = KernelLog(name: "subclass")
            let lock = SpinLock(0)
            run("ld-sub", log) { lock.withLockNested(subclass: 8) { _ in } }
            #expect(log.lockdepHeadlines == ["BUG: looking up invalid subclass: 8"])
            #expect(!Lockdep.isActive)
        }
    }

    /// Off for the process: nothing recorded, nothing reported; on again: checked again.
    @Test func disabledRecordsNothing() {
        alone {
            let log = KernelLog(name: "disabled")
            let a = SleepingMutex(0)
            let b = SleepingMutex(0)
            Lockdep.isEnabled = false
            #expect(!Lockdep.isActive)
            // Counted once it is off: another suite's thread may have registered a class
            // between the gate's reset and the switch.
            let classes = Lockdep.statistics.classes
            run("ld-off", log) {
                try? a.withLock { _ in try? b.withLock { _ in } }
                try? b.withLock { _ in try? a.withLock { _ in } }
            }
            #expect(log.reports.isEmpty)
            #expect(Lockdep.statistics.classes == classes, "nothing registered while off")
            Lockdep.isEnabled = true
            run("ld-on", log) {
                try? a.withLock { _ in try? b.withLock { _ in } }
                try? b.withLock { _ in try? a.withLock { _ in } }
            }
            #expect(log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
        }
    }

    /// 4,096 classes and 1,000,000 acquisitions on 8 threads: no report (every order is
    /// ascending), within the limits. Prints time and memory. Under ThreadSanitizer (which
    /// makes it take about a minute) a tenth of the acquisitions.
    @Test func stress() {
        alone {
            let log = KernelLog(name: "stress")
            let classCount = 4096
            let all = maps("stress", classCount)
            let threads = 8
            #if IRQEMU_TSAN
            let perThread = 12_500
            #else
            let perThread = 125_000  // acquisitions: 8 × 125,000 = 1,000,000
            #endif
            let rssBefore = residentBytes()
            let start = monotonicNanoseconds()
            let finished = Threads.run(threads, name: "ld-stress", timeout: .seconds(120)) { t in
                KernelLog.withCurrent(log) {
                    // Groups of 8 classes; each round nests three of one group in
                    // ascending order, so every order agrees and chains stay short.
                    var n = 0, round = t * 97
                    while n < perThread {
                        let group = (round / 6) % (classCount / 8), j = round % 6
                        let a = all[group * 8 + j], b = all[group * 8 + j + 1], c = all[group * 8 + 7]
                        Lockdep.acquire(a, function: "test", file: #fileID, line: #line)
                        Lockdep.acquire(b, function: "test", file: #fileID, line: #line)
                        Lockdep.acquire(c, function: "test", file: #fileID, line: #line)
                        Lockdep.release(c)
                        Lockdep.release(b)
                        Lockdep.release(a)
                        n += 3
                        round += 1
                    }
                }
            }
            let elapsed = Double(monotonicNanoseconds() - start) / 1e9
            let stats = Lockdep.statistics
            let rssAfter = residentBytes()
            print("lockdep stress: \(threads * perThread) acquisitions on \(threads) threads, \(stats.classes) classes, \(stats.dependencies) dependencies, \(stats.chains) chains, \(stats.traces) traces in \(String(format: "%.2f", elapsed)) s; resident memory +\((rssAfter - rssBefore) / 1024) KiB")
            #expect(finished)
            #expect(log.reports.isEmpty)
            #expect(stats.classes >= classCount, "(other tests may add classes meanwhile)")
            #expect(stats.isActive)
            #expect(stats.dependencies <= Lockdep.limits.entries / 2)
        }
    }

    /// The cost of a known chain, validator on and off (printed; no timing assertion),
    /// and no report from the measured locks.
    @Test func costOfAKnownChain() {
        alone {
            let log = KernelLog(name: "cost")
            let outer1 = SpinLock(0)
            let outer2 = SpinLock(0)
            let lock = SpinLock(0)
            let iterations = Scale.iterations(1_000_000, tsan: 20_000)
            @Sendable func measure(depth: Int) -> Double {
                let start = monotonicNanoseconds()
                for _ in 0..<iterations {
                    if depth == 1 {
                        lock.withLock { $0 &+= 1 }
                    } else {
                        outer1.withLock { _ in outer2.withLock { _ in lock.withLock { $0 &+= 1 } } }
                    }
                }
                return Double(monotonicNanoseconds() - start) / Double(iterations)
            }
            let figures = Threads.onThread(name: "ld-cost", timeout: .seconds(120)) { () -> [Double] in
                KernelLog.withCurrent(log) { _ = measure(depth: 3) }
                _ = measure(depth: 1)
                _ = measure(depth: 3)
                let on1 = measure(depth: 1), on3 = measure(depth: 3)
                Lockdep.isEnabled = false
                let off1 = measure(depth: 1), off3 = measure(depth: 3)
                Lockdep.isEnabled = true
                return [on1, off1, on3, off3]
            }
            #expect(log.reports.isEmpty)
            guard let f = figures else { return }
            print(String(format: "lockdep cost, SpinLock withLock (ns per outermost call): depth 1 on %.1f off %.1f; depth 3 on %.1f off %.1f", f[0], f[1], f[2], f[3]))
        }
    }
}

/// The process's resident set, in bytes (`/proc/self/statm`).
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

// MARK: - Exit-test bodies

/// In an exit test: writes `message` to standard error and exits 1 unless `condition`.
private func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    guard condition else {
        FileHandle.standardError.write(Data("FAILED: \(message())\n".utf8))
        exit(1)
    }
}

private func passed() -> Never {
    FileHandle.standardError.write(Data("ok\n".utf8))
    exit(0)
}

/// Eight classes at most: the ninth is reported once, and the validator switches off (not
/// disabled); off, nothing more is checked and assertions pass; a reset switches it on.
func tooManyClassesChild() {
    var limits = Lockdep.Limits.kernel
    limits.classes = 8
    Lockdep.reset(limits: limits)
    let log = KernelLog(name: "keys")
    run("ld-keys", log) {
        for map in maps("keys", 12) {
            Lockdep.acquire(map, function: "test", file: #fileID, line: #line)
            Lockdep.release(map)
        }
    }
    require(log.lockdepHeadlines == ["BUG: MAX_LOCKDEP_KEYS too low!"], "reported once: \(log.lockdepHeadlines)")
    require(
        log.reports.first?.lines.prefix(2) == ["BUG: MAX_LOCKDEP_KEYS too low!", "turning off the locking correctness validator."],
        "\(log.reports.first?.lines ?? [])")
    require(!Lockdep.isActive, "off")
    require(Lockdep.isEnabled, "switched off, not disabled")
    require(Lockdep.statistics.classes == 8, "classes \(Lockdep.statistics.classes)")
    require(Lockdep.statistics.count(.limitOverflow) == 1, "one overflow")
    let a = SleepingMutex(0), b = SleepingMutex(1)
    run("ld-off", log) {
        try? a.withLock { _ in try? b.withLock { _ in } }
        try? b.withLock { _ in try? a.withLock { _ in } }
        Lockdep.assertHeld(a)
    }
    require(log.reportCount == 1, "nothing checked while off: \(log.reports.map(\.headline))")
    Lockdep.reset()
    require(Lockdep.isActive, "on after a reset")
    passed()
}

/// Six entries (three dependencies): the fourth dependency is reported and switches the
/// validator off.
func tooManyDependenciesChild() {
    var limits = Lockdep.Limits.kernel
    limits.entries = 6
    Lockdep.reset(limits: limits)
    let log = KernelLog(name: "entries")
    let all = maps("entries", 6)
    run("ld-entries", log) {
        for i in 0..<5 {
            Lockdep.acquire(all[i], function: "test", file: #fileID, line: #line)
            Lockdep.acquire(all[i + 1], function: "test", file: #fileID, line: #line)
            Lockdep.release(all[i + 1])
            Lockdep.release(all[i])
        }
    }
    require(log.lockdepHeadlines == ["BUG: MAX_LOCKDEP_ENTRIES too low!"], "\(log.lockdepHeadlines)")
    require(Lockdep.statistics.dependencies == 3, "dependencies \(Lockdep.statistics.dependencies)")
    require(!Lockdep.isActive, "off")
    passed()
}

/// Four chains: the fifth is reported.
func tooManyChainsChild() {
    var limits = Lockdep.Limits.kernel
    limits.chains = 4
    Lockdep.reset(limits: limits)
    let log = KernelLog(name: "chains")
    let all = maps("chains", 6)
    run("ld-chains", log) {
        for map in all {
            Lockdep.acquire(map, function: "test", file: #fileID, line: #line)
            Lockdep.release(map)
        }
    }
    require(log.lockdepHeadlines == ["BUG: MAX_LOCKDEP_CHAINS too low!"], "\(log.lockdepHeadlines)")
    require(Lockdep.statistics.chains == 4, "chains \(Lockdep.statistics.chains)")
    passed()
}
