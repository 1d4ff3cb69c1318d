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
                --strategy broken is the correct teardown without its waits: no grace period \
                before a Devres is released, and handler data released before free_irq waits \
                for running handlers. Only a reader or handler racing that release sees it; \
                it must be caught (exit status 1). Each device's hard handlers also queue a \
                work item (its bottom half), cancelled at unbind with disableWorkSync before \
                its data is released; --strategy broken-cancel cancels it with a non-sync \
                cancelWork in the driver's remove instead, and releases its data there, while \
                the handlers can still queue it: a work item that runs after its data was \
                released must be caught (exit status 1).
                """)

        @OptionGroup var common: CommonOptions
        @Option(help: "Seconds to run.") var seconds = 10.0
        @Option(help: "Reader threads.") var readers = 2
        @Option(help: "Seconds after which an unfinished grace period or free_irq is reported as a stall.")
        var stallTimeout = 10.0
        @Flag(help: "Inject faults (seeded): stretched grace periods, preempted readers, delayed handlers, extra interrupts, interrupts during unbind, late work items.")
        var faults = false
        @Option(help: "The faults' seed (with --faults); each thread draws the same faults run to run.")
        var seed: UInt64 = 1
        @Option(help: "The faults to inject instead of the default set, in IRQEMU_FAULTS form (e.g. gp=0.5:2ms,reader=0.01:0).")
        var faultSpec: String?

        /// The faults `--faults` injects unless `--fault-spec` says otherwise.
        static let defaultFaults = "gp=0.2:2ms,callback=0.2:2ms,reader=0.002:0,primary=0.02:20us,threaded=0.1:200us,"
            + "free=0.3:1ms,duplicate=0.05,spurious=0.01,unbind-irqs=1,work=0.1:200us"

        func validate() throws {
            try common.validate(allowBroken: true)
            guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
            guard (0...32).contains(readers) else { throw ValidationError("--readers must be between 0 and 32") }
            if let faultSpec, (try? Faults(parsing: faultSpec)) == nil {
                throw ValidationError("--fault-spec '\(faultSpec)' is not a fault list (e.g. gp=0.5:2ms,duplicate=0.1)")
            }
        }

        mutating func run() throws {
            if faults || faultSpec != nil {
                // Set before any thread starts: reader preemption applies to threads that
                // register with RCU afterwards.
                var configured = try Faults(parsing: faultSpec ?? Self.defaultFaults)
                configured.seed = seed
                FaultInjection.process = configured
                progress("irqsim torture: faults injected: \(configured)")
            }
            let world = try TortureWorld(
                cpus: common.cpus, strategy: common.strategy, readers: readers, stallTimeout: stallTimeout)
            let result = try world.run(seconds: seconds)
            print(result.summary)
            if !result.allThreadsStopped {
                // Stuck threads could also block exit's handlers: leave now.
                fflushStdout()
                _exit(1)
            }
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
    /// The device's bottom half, which the hard handlers queue.
    let work: TortureWork
    let irq: IRQNumber
    let generation: UInt64
    let older: [Devres<Guarded>]
    let stats: Stats
    let hardIRQReadsDevres: Bool
    let levelLine: (IRQController, IRQNumber)?

    init(irq: IRQNumber, generation: UInt64, older: [Devres<Guarded>], stats: Stats, hardIRQReadsDevres: Bool,
         levelLine: (IRQController, IRQNumber)?, work: TortureWork) {
        self.data = Guarded(generation: generation)
        self.work = work
        self.irq = irq
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
        work.queue.enqueue(work)
        return .handled
    }

    func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn {
        data.use(generation, stats, "primary handler data")
        stats.interrupts.add(1, ordering: .relaxed)
        work.queue.enqueue(work)
        return .wakeThread
    }

    func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
        data.use(generation, stats, "threaded handler data")
        readDevres(device)
        if let (controller, irq) = levelLine { try? controller.deassertLine(irq) }  // the device side
        return .handled
    }
}

/// A device's bottom half: queued by its hard handlers, it checks its own data and reads the
/// device's older Devres (through `tryAccess`: work items get no `Device.Bound`, and after
/// batched unbind's flip they find them revoked).
final class TortureWork: WorkItem {
    let work = Work(name: "torture_bh")
    let queue: Workqueue
    let data: Guarded
    let generation: UInt64
    let older: [Devres<Guarded>]
    let stats: Stats

    init(queue: Workqueue, generation: UInt64, older: [Devres<Guarded>], stats: Stats) {
        self.queue = queue
        data = Guarded(generation: generation)
        self.generation = generation
        self.older = older
        self.stats = stats
    }

    func run() {
        data.use(generation, stats, "work item data")
        for devres in older { _ = devres.tryAccess { $0.use(generation, stats, "work item Devres read") } }
        stats.workRuns.add(1, ordering: .relaxed)
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
    /// The bottom half cancelled with a non-sync cancel, its data released at once.
    let brokenCancel: Bool
    /// The bottom halves' queue.
    let bottomHalves: Workqueue
    let readerCount: Int
    let current = RCUPointer<Generation>()
    let stop = Atomic<Bool>(false)
    let efd: IRQNumber, signal: IRQNumber, timer: IRQNumber, soft: IRQNumber, level: IRQNumber

    init(cpus: Int, strategy: String, readers: Int, stallTimeout: Double) throws {
        controller = try IRQController(name: "torture", cpus: cpus)
        self.strategy = strategy == "mutex" ? .mutex : .rcu
        broken = strategy == "broken"
        brokenCancel = strategy == "broken-cancel"
        bottomHalves = try Workqueue(name: "torture_bh")
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
        /// False if a thread did not stop within the join bound (a stall that never ended).
        let allThreadsStopped: Bool
    }

    func run(seconds: Double) throws -> Result {
        let start = monotonicNanoseconds()
        stats.origin.store(start, ordering: .relaxed)
        let gracePeriods = RCU.gracePeriodsWaited
        watchdog.start()
        try controller.armTimer(timer, initial: .milliseconds(1), interval: .microseconds(500))
        let children = [
            try Helper.spawn(["eventfd", "3", "100000000", "50"], fds: [(try controller.eventFD(of: efd), 3)]),
            try Helper.spawn(["signal", "\(getpid())", "\(try controller.signal(of: signal))", "100000000", "200"]),
        ]
        var threads: [KThread] = []
        for i in 0..<readerCount { threads.append(try KThread(name: "reader\(i)") { self.reader() }) }
        threads.append(try KThread(name: "storm") { self.storm() })
        threads.append(try KThread(name: "gp-poker") { self.gracePeriodPoker() })
        threads.append(try KThread(name: "writer") { self.writer() })

        // Report every second; stop at the deadline (or, for the broken strategy, at the
        // first report after it was caught).
        var last = (reads: UInt64(0), unbinds: UInt64(0), irqs: UInt64(0), gps: RCU.gracePeriodsWaited)
        let deadline = start + UInt64(seconds * 1e9)
        var second = 0
        while monotonicNanoseconds() < deadline {
            try Deadline(nanoseconds: min(deadline, start + UInt64(second + 1) * 1_000_000_000)).sleep()
            second += 1
            let now = (reads: stats.reads.load(ordering: .relaxed), unbinds: stats.unbinds.load(ordering: .relaxed),
                       irqs: stats.interrupts.load(ordering: .relaxed), gps: RCU.gracePeriodsWaited)
            progress(
                "[\(String(format: "%3d", second))s] reads \(now.reads - last.reads)  unbinds \(now.unbinds - last.unbinds)  "
                    + "interrupts \(now.irqs - last.irqs)  grace periods \(now.gps - last.gps)  "
                    + "violations \(stats.violations.load(ordering: .relaxed))  stalls \(stats.stalls.load(ordering: .relaxed))")
            last = now
            if (broken || brokenCancel) && stats.violations.load(ordering: .relaxed) > 0 { break }
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        stop.store(true, ordering: .relaxed)
        for child in children { child.kill() }
        // A thread stuck for good (a grace period or free_irq that never ends) must not hang
        // the run: wait past the stall bound, so the watchdog reports it first, then give up.
        let joinDeadline = monotonicNanoseconds() + UInt64((watchdog.boundSeconds + 5) * 1e9)
        let stuck = threads.filter { thread in
            (try? thread.join(timeout: Deadline(nanoseconds: joinDeadline).remaining)) == nil
        }
        for child in children { _ = try? child.wait(timeout: .seconds(10)) }
        try? controller.disarmTimer(timer)
        watchdog.shutdown()

        let violations = stats.violations.load(ordering: .relaxed)
        let stalls = stats.stalls.load(ordering: .relaxed)
        let passed = violations == 0 && stalls == 0 && stuck.isEmpty
        let faults = FaultInjection.process
        let name = broken ? "broken" : brokenCancel ? "broken-cancel" : strategy.description
        var summary = "irqsim torture: strategy \(name), \(fmtSeconds(elapsed)) s, "
            + (faults.isActive ? "faults \(faults), " : "")
            + "\(readerCount) readers, \(controller.cpuCount) CPUs: reads \(fmtCount(stats.reads.load(ordering: .relaxed))), "
            + "unbinds \(fmtCount(stats.unbinds.load(ordering: .relaxed))), "
            + "interrupts \(fmtCount(stats.interrupts.load(ordering: .relaxed))), "
            + "work items \(fmtCount(stats.workRuns.load(ordering: .relaxed))), "
            + "grace periods \(fmtCount(RCU.gracePeriodsWaited - gracePeriods)), "
            + "violations \(violations), stalls \(stalls): \(passed ? "PASS" : "FAIL")"
        for line in stats.violationKinds { summary += "\n  " + line }
        if !stuck.isEmpty {
            summary += "\n  threads still running \(fmtSeconds(watchdog.boundSeconds + 5)) s after the stop: "
                + stuck.map(\.name).joined(separator: ", ")
            summary += "\n  Task states (tid, name, state):\n" + Watchdog.taskStates().joined(separator: "\n")
        }
        return Result(summary: summary, passed: passed, allThreadsStopped: stuck.isEmpty)
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
            if i % 8 == 0 { try? controller.assertLine(level) }
            i += 1
            if i % 64 == 0 { usleep(50) }
        }
        try? controller.deassertLine(level)
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

    /// A requested IRQ of the torture device. Dropping the registration frees the IRQ.
    struct Requested {
        var registration: AnyObject?
        let handler: TortureHandler
    }

    /// One bind → probe → (early drops) → unbind cycle.
    private func cycle(_ generation: UInt64) {
        let device = Device(name: "torture\(generation)")
        let older = Mutex<[Devres<Guarded>]>([])
        let newer = Mutex<[Devres<Guarded>]>([])
        let registrations = Mutex<[Requested]>([])
        let bottomHalf = Mutex<TortureWork?>(nil)
        let strategy = self.strategy
        let hardIRQReadsDevres = strategy == .rcu
        do {
            try device.bind(ClosureDriver(name: "torture", probe: { [self] bound in
                for _ in 0..<6 {
                    let d = try Devres(bound, Guarded(generation: generation), strategy: strategy)
                    older.withLock { $0.append(d) }
                }
                let olderDevres = older.withLock { $0 }
                let work = TortureWork(queue: bottomHalves, generation: generation, older: olderDevres, stats: stats)
                bottomHalf.withLock { $0 = work }
                // The bottom half before the IRQs that queue it: unbind frees them first, then
                // disables it (broken-cancel: not managed; its remove cancels it, non-sync).
                if !brokenCancel { try bound.device.addWork(bound, work) }
                func handler(_ irq: IRQNumber) -> TortureHandler {
                    TortureHandler(
                        irq: irq, generation: generation, older: olderDevres, stats: stats,
                        hardIRQReadsDevres: hardIRQReadsDevres, levelLine: irq == level ? (controller, level) : nil,
                        work: work)
                }
                for irq in [soft, signal, timer] {
                    let h = handler(irq)
                    let r = try Registration(bound, controller: controller, irq: irq, name: "t\(generation)", strategy: strategy, handler: h)
                    registrations.withLock { $0.append(Requested(registration: r, handler: h)) }
                }
                let hEfd = handler(efd)
                let rEfd = try ThreadedRegistration(bound, controller: controller, irq: efd, name: "t\(generation)", strategy: strategy, handler: hEfd)
                registrations.withLock { $0.append(Requested(registration: rEfd, handler: hEfd)) }
                let hLevel = handler(level)
                let rLevel = try ThreadedRegistration(
                    bound, controller: controller, irq: level, flags: [.oneShot, .triggerHigh], name: "t\(generation)",
                    strategy: strategy, handler: hLevel)
                registrations.withLock { $0.append(Requested(registration: rLevel, handler: hLevel)) }
                // Registered after the IRQs: released before them (handlers do not read these).
                for _ in 0..<4 {
                    let d = try Devres(bound, Guarded(generation: generation), strategy: strategy)
                    newer.withLock { $0.append(d) }
                }
            }, remove: { [self] _ in
                // The buggy driver's remove: cancel_work (no wait, and the IRQs are still
                // requested, so a handler queues it again), then free the work's data.
                guard brokenCancel, let work = bottomHalf.withLock({ $0 }) else { return }
                work.cancelWork()
                work.data.releaseResource()
            }))
        } catch {
            stats.violation("bind failed", generation: generation)
            progress("irqsim torture: bind failed: \(error)")
            return
        }
        let olderDevres = older.withLock { $0 }, newerDevres = newer.withLock { $0 }
        current.replace(with: Generation(number: generation, devres: olderDevres + newerDevres))
        usleep(UInt32.random(in: 300...2_000))

        // The only references to the registrations from here on, so that dropping one frees its IRQ.
        var held = registrations.withLock { list in
            defer { list.removeAll() }
            return list
        }
        if generation % 3 == 0 {
            // Drop some registrations early: free_irq runs at the drop.
            var early = Array(held.prefix(2))
            held.removeFirst(2)
            freeIRQs(&early, "early registration drop (free_irq) of torture\(generation)")
        }
        let mode: UnbindMode = generation % 2 == 0 ? .batched : .perObject
        if broken {
            brokenTeardown(newer: newerDevres, requested: &held, older: olderDevres, generation: generation)
        }
        watchdog.watch("unbind (\(mode)) of torture\(generation)") { _ = try? device.unbind(mode: mode) }
        stats.unbinds.add(1, ordering: .relaxed)
        // Every IRQ is freed: handler data may go now. Keep the handlers (quarantine), so a
        // handler that ran after free_irq would read poison rather than freed memory.
        for requested in held {
            Quarantine.shared.keep(requested.handler)
            requested.handler.data.releaseResource()
        }
        // Unbind disabled the bottom half and waited for it: its data may go now (kept in the
        // quarantine, so a run after this reads poison and is counted).
        if let work = bottomHalf.withLock({ $0 }) {
            Quarantine.shared.keep(work)
            if !brokenCancel { work.data.releaseResource() }
        }
    }

    /// free_irq for each of `requested`, newest first, by dropping its registration, then the
    /// release of its handler data (the handler is kept in the quarantine). Broken: the data
    /// is released once the line takes no new interrupts, but before free_irq waits for the
    /// handlers still running (the unlink and wait halves, with the release between them).
    private func freeIRQs(_ requested: inout [Requested], _ what: @autoclosure () -> String) {
        for i in requested.indices.reversed() {
            let handler = requested[i].handler
            Quarantine.shared.keep(handler)
            if broken {
                // The line has one action: disabling it stops new handlers as unlinking
                // would; free_irq below waits for running ones, as it should — too late.
                try? controller.disableIRQNoSync(handler.irq)
                handler.data.releaseResource()
            }
            watchdog.watch(what()) { requested[i].registration = nil }
            if !broken { handler.data.releaseResource() }
        }
        requested.removeAll()
    }

    /// The buggy driver's teardown: what unbind does, in its order, with the waits left
    /// out. Each Devres is released at once with no grace period (`revokeNoSync`: poisoned
    /// and moved to the quarantine, so only a reader already inside `tryAccess` sees the
    /// poison, never freed memory); handler data goes before free_irq's wait
    /// (`freeIRQs`). The Devres read by handlers (`older`) still go after free_irq, as in
    /// the correct order. Unbind then finds everything released.
    private func brokenTeardown(newer: [Devres<Guarded>], requested: inout [Requested], older: [Devres<Guarded>], generation: UInt64) {
        for devres in newer.reversed() { unsafe devres.revokeNoSync() }
        freeIRQs(&requested, "free_irq (broken) of torture\(generation)")
        for devres in older.reversed() { unsafe devres.revokeNoSync() }
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
