import ArgumentParser
import Foundation
import IRQEmu
import Synchronization

extension IRQSim {
    /// rcutorture for device lifetimes: readers and handlers check the data they use is
    /// alive while a writer binds, probes and unbinds devices under an interrupt storm.
    struct Torture: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Race bind/probe/unbind against readers and an interrupt storm; fail on any use after release.",
            discussion: """
                Readers and handlers check a generation number and a poison pattern on every \
                access; released data goes to a quarantine, so a use after release is counted. \
                --strategy broken revokes without a grace period and releases handler data \
                before free_irq: it must be caught (exit status 1).
                """)

        @OptionGroup var common: CommonOptions
        @Option(help: "Seconds to run.") var seconds = 10.0
        @Option(help: "Reader threads.") var readers = 2
        @Option(help: "Seconds after which an unfinished grace period or free_irq is reported as a stall.")
        var stallTimeout = 10.0

        func validate() throws {
            try common.validate(allowBroken: true)
            guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
            guard (0...32).contains(readers) else { throw ValidationError("--readers must be between 0 and 32") }
        }

        mutating func run() throws {
            let world = try TortureWorld(
                cpus: common.cpus, strategy: common.strategy, readers: readers, stallTimeout: stallTimeout)
            let result = try world.run(seconds: seconds)
            print(result.summary)
            if !result.passed { throw ExitCode(1) }
        }
    }
}

/// What the readers read: the current device's Devres.
final class Generation: Sendable {
    let number: UInt64
    let devres: [Devres<Guarded>]
    init(number: UInt64, devres: [Devres<Guarded>]) {
        self.number = number
        self.devres = devres
    }
}

/// A handler whose own data (and, outside hard-IRQ context with the mutex strategy, the
/// device's older Devres) it checks on every run.
final class TortureHandler: Handler, ThreadedHandler {
    let data: Guarded
    let generation: UInt64
    let older: [Devres<Guarded>]
    let stats: Stats
    let hardIRQReadsDevres: Bool
    let levelLine: (IRQController, IRQNumber)?

    init(generation: UInt64, older: [Devres<Guarded>], stats: Stats, hardIRQReadsDevres: Bool, levelLine: (IRQController, IRQNumber)?) {
        self.data = Guarded(generation: generation)
        self.generation = generation
        self.older = older
        self.stats = stats
        self.hardIRQReadsDevres = hardIRQReadsDevres
        self.levelLine = levelLine
    }

    private func readDevres(_ device: borrowing Device.Bound) {
        for devres in older {
            // Registered before the IRQ: valid on proof of boundness until after free_irq.
            do {
                try devres.access(device) { $0.use(generation, stats, "handler Devres access") }
            } catch {
                stats.violation("Devres released before its IRQ was freed", generation: generation)
            }
        }
    }

    func handle(device: borrowing Device.Bound) -> IRQReturn {
        data.use(generation, stats, "hard-IRQ handler data")
        if hardIRQReadsDevres { readDevres(device) }
        stats.interrupts.add(1, ordering: .relaxed)
        return .handled
    }

    func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn {
        data.use(generation, stats, "primary handler data")
        stats.interrupts.add(1, ordering: .relaxed)
        return .wakeThread
    }

    func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
        data.use(generation, stats, "threaded handler data")
        readDevres(device)
        if let (controller, irq) = levelLine { try? controller.deassert(irq) }  // the device side
        return .handled
    }
}

/// The torture machine.
final class TortureWorld: @unchecked Sendable {
    // SAFETY: configured in init, then read-only; counters are atomics.
    let controller: IRQController
    let stats = Stats()
    let watchdog: Watchdog
    let strategy: RevocationStrategy
    let broken: Bool
    let readerCount: Int
    let current = RCUPointer<Generation>()
    let stop = Atomic<Bool>(false)
    let efd: IRQNumber, signal: IRQNumber, timer: IRQNumber, soft: IRQNumber, level: IRQNumber

    init(cpus: Int, strategy: String, readers: Int, stallTimeout: Double) throws {
        controller = try IRQController(name: "torture", cpus: cpus)
        self.strategy = strategy == "mutex" ? .mutex : .rcu
        broken = strategy == "broken"
        readerCount = readers
        watchdog = Watchdog(boundSeconds: stallTimeout, stats: stats)
        efd = try controller.addEventFDLine()
        signal = try controller.addSignalLine()
        timer = try controller.addTimerLine()
        soft = try controller.addSoftwareLine()
        level = try controller.addSoftwareLine(trigger: .triggerHigh)
    }

    struct Result {
        let summary: String
        let passed: Bool
    }

    func run(seconds: Double) throws -> Result {
        let start = monotonicNanoseconds()
        let gracePeriods = RCU.gracePeriodsWaited
        watchdog.start()
        try controller.armTimer(timer, initial: 0.001, interval: 0.0005)
        let children = [
            try ChildProcess.helper(["eventfd", "3", "100000000", "50"], fds: [(try controller.eventFD(of: efd), 3)]),
            try ChildProcess.helper(["signal", "\(getpid())", "\(try controller.signal(of: signal))", "100000000", "200"]),
        ]
        var threads: [KThread] = []
        for i in 0..<readerCount { threads.append(KThread(name: "reader\(i)") { self.reader() }) }
        threads.append(KThread(name: "storm") { self.storm() })
        threads.append(KThread(name: "gp-poker") { self.gracePeriodPoker() })
        threads.append(KThread(name: "writer") { self.writer() })

        // Report every second; stop at the deadline (or, for the broken strategy, once caught).
        var last = (reads: UInt64(0), unbinds: UInt64(0), irqs: UInt64(0), gps: RCU.gracePeriodsWaited)
        let deadline = start + UInt64(seconds * 1e9)
        var second = 0
        while monotonicNanoseconds() < deadline {
            Deadline(nanoseconds: min(deadline, start + UInt64(second + 1) * 1_000_000_000)).sleep()
            second += 1
            let now = (reads: stats.reads.load(ordering: .relaxed), unbinds: stats.unbinds.load(ordering: .relaxed),
                       irqs: stats.interrupts.load(ordering: .relaxed), gps: RCU.gracePeriodsWaited)
            progress(
                "[\(String(format: "%3d", second))s] reads \(now.reads - last.reads)  unbinds \(now.unbinds - last.unbinds)  "
                    + "interrupts \(now.irqs - last.irqs)  grace periods \(now.gps - last.gps)  "
                    + "violations \(stats.violations.load(ordering: .relaxed))  stalls \(stats.stalls.load(ordering: .relaxed))")
            last = now
            if broken && stats.violations.load(ordering: .relaxed) > 0 { break }
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        stop.store(true, ordering: .relaxed)
        for child in children { child.kill() }
        for thread in threads { thread.join() }
        for child in children { _ = child.wait(timeout: 10) }
        try? controller.disarmTimer(timer)
        watchdog.shutdown()

        let violations = stats.violations.load(ordering: .relaxed)
        let stalls = stats.stalls.load(ordering: .relaxed)
        let passed = violations == 0 && stalls == 0
        var summary = "irqsim torture: strategy \(broken ? "broken" : strategy.description), \(fmtSeconds(elapsed)) s, "
            + "\(readerCount) readers, \(controller.cpuCount) CPUs: reads \(fmtCount(stats.reads.load(ordering: .relaxed))), "
            + "unbinds \(fmtCount(stats.unbinds.load(ordering: .relaxed))), "
            + "interrupts \(fmtCount(stats.interrupts.load(ordering: .relaxed))), "
            + "grace periods \(fmtCount(RCU.gracePeriodsWaited - gracePeriods)), "
            + "violations \(violations), stalls \(stalls): \(passed ? "PASS" : "FAIL")"
        if !stats.violationSamples.isEmpty {
            summary += "\n  first violations: " + stats.violationSamples.joined(separator: "; ")
        }
        return Result(summary: summary, passed: passed)
    }

    // MARK: - Threads

    private func reader() {
        var reads: UInt64 = 0
        while !stop.load(ordering: .relaxed) {
            // Copy the generation out: a mutex Devres may not be read inside a read section.
            guard let generation = current.read({ $0 }) else {
                usleep(100)
                continue
            }
            for _ in 0..<16 {
                for devres in generation.devres {
                    _ = devres.tryAccess { $0.use(generation.number, stats, "reader") }
                    reads += 1
                }
            }
            if reads >= 4096 {
                stats.reads.add(reads, ordering: .relaxed)
                reads = 0
            }
        }
        stats.reads.add(reads, ordering: .relaxed)
    }

    private func storm() {
        var i = 0
        while !stop.load(ordering: .relaxed) {
            try? controller.raise(soft)
            try? controller.raise(efd)
            if i % 8 == 0 { try? controller.assert(level) }
            i += 1
            if i % 64 == 0 { usleep(50) }
        }
        try? controller.deassert(level)
    }

    private func gracePeriodPoker() {
        while !stop.load(ordering: .relaxed) {
            watchdog.watch("synchronize_rcu()") { _ = try? RCU.synchronize() }
            usleep(2_000)
        }
    }

    private func writer() {
        var generation: UInt64 = 0
        while !stop.load(ordering: .relaxed) {
            generation += 1
            cycle(generation)
            stats.cycles.add(1, ordering: .relaxed)
        }
    }

    /// One bind → probe → (early drops) → unbind cycle.
    private func cycle(_ generation: UInt64) {
        let device = Device(name: "torture\(generation)")
        let older = LockedValue<[Devres<Guarded>]>([])
        let newer = LockedValue<[Devres<Guarded>]>([])
        let registrations = LockedValue<[(AnyObject, TortureHandler)]>([])
        let strategy = self.strategy
        let hardIRQReadsDevres = strategy == .rcu
        do {
            try device.bind(ClosureDriver(name: "torture", probe: { [self] bound in
                for _ in 0..<6 {
                    let d = try Devres(bound, Guarded(generation: generation), strategy: strategy)
                    older.withLock { $0.append(d) }
                }
                let olderDevres = older.withLock { $0 }
                func handler(level: Bool = false) -> TortureHandler {
                    TortureHandler(
                        generation: generation, older: olderDevres, stats: stats, hardIRQReadsDevres: hardIRQReadsDevres,
                        levelLine: level ? (controller, self.level) : nil)
                }
                for irq in [soft, signal, timer] {
                    let h = handler()
                    let r = try Registration(bound, controller: controller, irq: irq, name: "t\(generation)", handler: h, strategy: strategy)
                    registrations.withLock { $0.append((r, h)) }
                }
                let hEfd = handler()
                let rEfd = try ThreadedRegistration(bound, controller: controller, irq: efd, name: "t\(generation)", handler: hEfd, strategy: strategy)
                registrations.withLock { $0.append((rEfd, hEfd)) }
                let hLevel = handler(level: true)
                let rLevel = try ThreadedRegistration(
                    bound, controller: controller, irq: level, flags: [.oneShot, .triggerHigh], name: "t\(generation)",
                    handler: hLevel, strategy: strategy)
                registrations.withLock { $0.append((rLevel, hLevel)) }
                // Registered after the IRQs: released before them (handlers do not read these).
                for _ in 0..<4 {
                    let d = try Devres(bound, Guarded(generation: generation), strategy: strategy)
                    newer.withLock { $0.append(d) }
                }
            }))
        } catch {
            stats.violation("bind failed", generation: generation)
            progress("irqsim torture: bind failed: \(error)")
            return
        }
        let all = older.withLock { $0 } + newer.withLock { $0 }
        current.replace(with: Generation(number: generation, devres: all))
        usleep(UInt32.random(in: 300...2_000))

        if broken {
            // The buggy driver: release handler data before free_irq's wait, and revoke
            // without a grace period while readers read.
            for (_, h) in registrations.withLock({ $0 }) { h.data.releaseResource() }
            for devres in all {
                _ = devres.tryAccess(under: RCUReadGuard()) { $0 }.map { $0.releaseResource() }
                _ = unsafe devres.revocable.revokeNoSync()
            }
        }

        var held = registrations.withLock { $0 }
        if generation % 3 == 0 {
            // Drop some registrations early: free_irq runs at the drop.
            let dropped = held.prefix(2).map(\.1)
            watchdog.watch("early registration drop (free_irq) of torture\(generation)") {
                held.removeFirst(2)
                registrations.withLock { $0.removeFirst(2) }
            }
            for h in dropped {
                Quarantine.shared.keep(h)
                if !broken { h.data.releaseResource() }
            }
        }
        let mode: UnbindMode = generation % 2 == 0 ? .batched : .perObject
        watchdog.watch("unbind (\(mode)) of torture\(generation)") { _ = try? device.unbind(mode: mode) }
        stats.unbinds.add(1, ordering: .relaxed)
        // Every IRQ is freed: handler data may go now. Keep the handlers (quarantine), so a
        // handler that ran after free_irq would read poison rather than freed memory.
        for (_, h) in held {
            Quarantine.shared.keep(h)
            if !broken { h.data.releaseResource() }
        }
        registrations.withLock { $0.removeAll() }
    }
}

func progress(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

func fmtCount(_ n: UInt64) -> String {
    let s = String(n)
    var out = ""
    for (i, c) in s.reversed().enumerated() {
        if i > 0 && i % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return String(out.reversed())
}

func fmtSeconds(_ s: Double) -> String { String(format: "%.1f", s) }
