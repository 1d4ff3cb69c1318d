import ArgumentParser
import CBaselines
import Foundation
import IRQEmu

/// The benchmark: what RCU revocation buys over a mutex, what one-grace-period unbind buys
/// over one grace period per object, and what the IRQ layer costs over the raw system
/// calls. Every figure is a ratio against a baseline measured in the same run.
@main
struct IRQBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "irqbench",
        abstract: "Benchmark irqemu against C baselines measured in the same run.",
        discussion: "Sections: read, read_check, read_sweep, revoke, unbind, irq, lockdep, workqueue, async_latency, async_revoke, read_async_writer, crossover. Progress goes to stderr, tables to stdout.")

    @Flag(help: "The whole set, shorter, in under a minute.")
    var quick = false

    @Option(name: .customLong("section"), help: "Run only this section (repeatable).")
    var sections: [String] = []

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    /// Off by default: the strategy comparisons run as a production kernel would, without
    /// the validator (a mutex read pays for it, an RCU read does not); the lockdep section
    /// measures what it costs and the irq section's locked row runs with it.
    @Flag(help: "Keep the lock validator on in every section (default: only in the lockdep section and the irq section's locked row).")
    var validator = false

    /// 7 by default: on this 2-vCPU VM the median of 5 still moved a contested ratio across
    /// its target from run to run (RCU ÷ mutex 27–41×, 2 readers ÷ 1 1.49–2.04× over ten
    /// runs); two more repetitions cost the full run about a minute.
    @Option(help: "Repetitions per figure (at least 5).")
    var repetitions = 7

    func validate() throws {
        let known = Set([
            "read", "read_check", "read_sweep", "revoke", "unbind", "irq", "lockdep", "workqueue", "crossover", "async_latency", "async_revoke",
            "read_async_writer",
        ])
        for s in sections where !known.contains(s) {
            throw ValidationError("unknown section '\(s)'; one of \(known.sorted().joined(separator: ", "))")
        }
        guard repetitions >= 5 else { throw ValidationError("--repetitions must be at least 5") }
    }

    func wants(_ section: String) -> Bool { sections.isEmpty || sections.contains(section) }

    mutating func run() throws {
        // Real-time signals go to the dispatcher threads (which unblock them), not to
        // whichever thread the kernel picks: the same for the library and the C baselines.
        cb_block_realtime_signals()
        // The calling thread is registered with liburcu, as the C baselines register theirs:
        // with no registered thread at all, synchronize_rcu returns without a grace period.
        RCUThread.register()
        // Before any queue exists: the workqueue's per-CPU pool placed as the C baseline's
        // worker is (host CPU 1, with the dispatcher).
        WorkqueueBenchmark.configurePools()
        let started = Date()
        let machine = Machine.current()
        Lockdep.isEnabled = validator
        print("irqbench\(quick ? " --quick" : ""): \(machine.summary); lock validator \(validator ? "on" : "off outside the lockdep section and the locked row")")
        var report = Report(machine: machine)
        report.lock_validator = validator ? "on" : "off"
        let readDuration = quick ? 0.04 : 0.5

        if wants("read") || wants("crossover") {
            let (rows, table) = ReadBenchmark.run(repetitions: repetitions, duration: readDuration)
            report.read = rows.filter { $0.writer != "paced-coop" }
            report.read_cooperative = rows.filter { $0.writer == "paced-coop" }
            print(table, terminator: "")
        }
        if wants("read_check") {
            let (rows, table) = ReadBenchmark.check(repetitions: repetitions, duration: quick ? 0.03 : 0.3)
            report.read_check = rows
            print(table, terminator: "")
        }
        if wants("read_sweep") || wants("crossover") {
            let (rows, table) = ReadBenchmark.sweep(repetitions: repetitions, duration: readDuration)
            report.read_sweep = rows
            print(table, terminator: "")
        }
        if wants("revoke") {
            let (rows, table) = RevokeBenchmark.run(repetitions: repetitions, count: quick ? 60 : 300)
            report.revoke = rows
            print(table, terminator: "")
        }
        if wants("unbind") || wants("crossover") {
            let (rows, table) = try UnbindBenchmark.run(repetitions: repetitions)
            report.unbind = rows
            print(table, terminator: "")
        }
        if wants("irq") {
            let (rows, table, counted) = try IRQBenchmark.run(repetitions: repetitions, count: quick ? 2_000 : 15_000)
            report.irq = rows
            report.allocations_counted = counted
            print(table, terminator: "")
        }
        if wants("lockdep") {
            let (rows, table) = LockdepBenchmark.run(repetitions: repetitions, iterations: quick ? 200_000 : 2_000_000)
            report.lockdep = rows
            print(table, terminator: "")
        }
        if wants("workqueue") {
            let (rows, timers, summary, table) = try WorkqueueBenchmark.run(
                repetitions: repetitions, count: quick ? 2_000 : 15_000, timerCount: quick ? 100 : 400)
            report.workqueue = rows
            report.workqueue_timer = timers
            report.workqueue_timer_fired = summary
            if report.allocations_counted == nil { report.allocations_counted = IRQBenchmark.interposerCountsSwiftAllocations() }
            print(table, terminator: "")
        }
        if wants("async_latency") {
            let (rows, table) = AsyncLatencyBenchmark.run(repetitions: repetitions, count: quick ? 200 : 1_000)
            report.async_latency = rows
            print(table, terminator: "")
        }
        if wants("async_revoke") {
            let (rows, table) = AsyncRevokeBenchmark.run(repetitions: repetitions, count: 10_000)
            report.async_revoke = rows
            print(table, terminator: "")
        }
        if wants("read_async_writer") {
            let (rows, table) = ReadAsyncWriterBenchmark.run(repetitions: repetitions, duration: quick ? 0.5 : 1.0)
            report.read_async_writer = rows
            print(table, terminator: "")
        }
        if let crossover = Crossover.derive(read: report.read_sweep ?? [], unbind: report.unbind ?? []) {
            report.crossover = crossover
            print("\ncrossover: \(crossover.explanation)")
        }
        let targets = Targets.evaluate(report)
        report.targets = targets.rows
        print(targets.table, terminator: "")
        report.seconds = Date().timeIntervalSince(started)
        print("\n(\(fmt(report.seconds, 1)) s)")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            progress("wrote \(json)")
        }
    }
}

/// Everything `--json` writes.
struct Report: Codable {
    var machine: Machine
    /// "off" (default: on only in the lockdep section and the irq locked row) or "on".
    var lock_validator: String?
    var read: [ReadRow]?
    /// The paced writer with readers that are not preempted inside a section (`Cooperative`).
    var read_cooperative: [ReadRow]?
    /// What the per-read registration check costs: C's loop with and without it.
    var read_check: [ReadCheckRow]?
    var read_sweep: [SweepRow]?
    var revoke: [RevokeRow]?
    var unbind: [UnbindRow]?
    var irq: [IRQRow]?
    var lockdep: [LockdepRow]?
    /// Raise → start of the work item a hard handler queued, against C.
    var workqueue: [WorkqueueRow]?
    /// How late delayed work ran, per delay.
    var workqueue_timer: [TimerRow]?
    /// The timer thread's own lateness over the section.
    var workqueue_timer_fired: TimerLatenessSummary?
    var crossover: Crossover?
    var async_latency: [AsyncLatencyRow]?
    var async_revoke: [AsyncRevokeRow]?
    var read_async_writer: [ReadAsyncWriterRow]?
    var targets: [TargetRow] = []
    var allocations_counted: Bool?
    var seconds: Double = 0

    init(machine: Machine) { self.machine = machine }
}
