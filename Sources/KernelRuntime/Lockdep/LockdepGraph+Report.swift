/// The validator's reports, line for line in the kernel's words (kernel/locking/lockdep.c,
/// 6.x). What irqemu cannot reproduce is substituted, the rest kept byte for byte:
/// - a stack trace is one frame, `file:line by thread/tid` (where the lock was taken);
/// - `%px` is the lock's `LockdepMap` address; `%pS` is `file:line`;
/// - the kernel identity line is `irqemu #1 Not tainted`;
/// - irq event stamps are not tracked: they print as the kernel prints a never-seen event.
/// The `CPU:` and `Call Trace:` lines after `stack backtrace:` are `AtomicContext.warn`'s.
extension LockdepGraph {
    static let ident = "irqemu #1 Not tainted"

    /// Records each report made on the calling thread, to `a`'s log or the one in scope.
    func emit(_ reports: [[String]], _ a: Acquisition) {
        for lines in reports {
            AtomicContext.warn(.lockdep, lines, function: "\(a.function)", log: a.log, file: a.site.fileText, line: UInt(a.site.line))
        }
    }

    // MARK: - Pieces

    func header(_ title: String, rule: Int) -> [String] {
        ["", String(repeating: "=", count: rule), title, Self.ident, String(repeating: "-", count: rule)]
    }

    /// `%px`: 16 hex digits.
    static func hex(_ address: UInt) -> String {
        let digits = String(address, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }

    /// `__print_lock_name`: the class name with its subclass.
    func name(_ c: UInt32) -> String { classes[Int(c)].displayName }

    /// `print_lock_name` without its leading space: `(name){usage}-{o:i}`.
    func fullName(_ c: UInt32) -> String {
        "(\(name(c)))\(LockUsage.string(usage(c)))-\(classes[Int(c)].type.waitContext)"
    }

    /// `print_lock`: `%px (name){usage}-{o:i}, at: site`.
    func lockLine(_ instance: UInt, _ c: UInt32, site: String) -> String {
        "\(Self.hex(instance)) \(fullName(c)), at: \(site)"
    }

    func lockLine(_ a: Acquisition) -> String { lockLine(a.instance, a.classIndex, site: a.site.description) }

    func lockLine(_ entry: HeldLock) -> String { lockLine(entry.instance, entry.classIndex, site: entry.site.description) }

    /// `comm/pid` of the calling thread.
    var task: String { "\(ThreadState.name)/\(ThreadState.tid)" }

    /// `[HC%u[%lu]:SC%u[%lu]:HE%u:SE%u]` of the calling thread at `a`.
    func irqState(_ a: Acquisition) -> String {
        "[HC\(a.hardIRQ > 0 ? 1 : 0)[\(a.hardIRQ)]:SC\(a.softIRQ > 0 ? 1 : 0)[\(a.softIRQ)]:HE\(a.irqsOn ? 1 : 0):SE\(a.softIRQ == 0 ? 1 : 0)]"
    }

    /// `lockdep_print_held_locks` for the calling thread's first `depth` records (those of
    /// an older generation left out). Lock held.
    func heldLocks(depth: Int) -> [String] {
        let generation = self.generation.load(ordering: .relaxed)
        var lines: [String] = []
        for i in 0..<depth {
            let entry = Self.held(i)
            guard entry.generation == generation, Int(entry.classIndex) < classes.count else { continue }
            lines.append(" #\(lines.count): \(lockLine(entry))")
        }
        guard !lines.isEmpty else { return ["no locks held by \(task)."] }
        return ["\(lines.count) lock\(lines.count == 1 ? "" : "s") held by \(task):"] + lines
    }

    func traceLines(_ index: UInt32?, indent: Int) -> [String] {
        guard let index else { return [] }
        return traces[Int(index)].lines(indent: indent)
    }

    // MARK: - possible recursive locking detected

    func recursiveReport(_ a: Acquisition, prev: HeldLock, depth: Int) -> [String] {
        recursiveLines(next: lockLine(a), prev: lockLine(prev), nextName: name(a.classIndex), prevName: name(prev.classIndex), depth: depth)
    }

    func recursiveLines(next: String, prev: String, nextName: String, prevName: String, depth: Int) -> [String] {
        header("WARNING: possible recursive locking detected", rule: 44) + [
            "\(task) is trying to acquire lock:", next, "",
            "but task is already holding lock:", prev, "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:", "",
            "       CPU0", "       ----",
            "  lock(\(prevName));", "  lock(\(nextName));", "",
            " *** DEADLOCK ***", "",
            " May be due to missing lock nesting notation", "",
        ] + heldLocks(depth: depth) + ["", "stack backtrace:"]
    }

    // MARK: - possible circular locking dependency detected

    /// `path` runs from next's class to prev's, each class with the dependency into it.
    func circularReport(_ a: Acquisition, prev: HeldLock, path: [(class: UInt32, trace: UInt32?)], depth: Int) -> [String] {
        var lines = header("WARNING: possible circular locking dependency detected", rule: 54) + [
            "\(task) is trying to acquire lock:", lockLine(a), "",
            "but task is already holding lock:", lockLine(prev), "",
            "which lock already depends on the new lock.", "", "",
            "the existing dependency chain (in reverse order) is:",
        ]
        let n = path.count - 1
        for (k, step) in path.reversed().enumerated() {
            lines.append("")
            lines.append("-> #\(n - k) \(fullName(step.class)):")
            lines += step.trace.map { traces[Int($0)] }?.lines(indent: 7) ?? currentTrace(a).lines(indent: 7)
        }
        let next = a.classIndex, target = prev.classIndex, parent = path[path.count - 2].class
        lines += ["", "other info that might help us debug this:", ""]
        if parent != next {
            lines += ["Chain exists of:", "  \(name(next)) --> \(name(parent)) --> \(name(target))", ""]
        }
        lines += [
            " Possible unsafe locking scenario:", "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            "  lock(\(name(target)));",
            "                               lock(\(name(parent)));",
            "                               lock(\(name(target)));",
            "  lock(\(name(next)));", "",
            " *** DEADLOCK ***", "",
        ]
        return lines + heldLocks(depth: depth) + ["", "stack backtrace:"]
    }

    // MARK: - inconsistent lock state

    func inconsistentReport(_ a: Acquisition, previousBit: Int, newBit: Int, depth: Int) -> [String] {
        let c = a.classIndex
        let never = "(0): [<0000000000000000>] 0x0"
        return header("WARNING: inconsistent lock state", rule: 32) + [
            "inconsistent {\(LockUsage.names[previousBit])} -> {\(LockUsage.names[newBit])} usage.",
            "\(task) \(irqState(a)) takes:", lockLine(a),
            "{\(LockUsage.names[previousBit])} state was registered at:",
        ] + traceLines(classes[Int(c)].usageTraces[previousBit], indent: 2) + [
            "irq event stamp: 0",
            "hardirqs last  enabled at \(never)",
            "hardirqs last disabled at \(never)",
            "softirqs last  enabled at \(never)",
            "softirqs last disabled at \(never)",
            "", "other info that might help us debug this:",
            " Possible unsafe locking scenario:", "",
            "       CPU0", "       ----",
            "  lock(\(name(c)));", "  <Interrupt>", "    lock(\(name(c)));", "",
            " *** DEADLOCK ***", "",
        ] + heldLocks(depth: depth) + ["", "stack backtrace:"]
    }

    // MARK: - irq-safe -> irq-unsafe

    /// `print_irq_lock_scenario`.
    func irqScenario(safe: UInt32, unsafe unsafeClass: UInt32, prev: UInt32, next: UInt32) -> [String] {
        let middle = prev == safe ? next : prev
        var lines: [String] = []
        if middle != unsafeClass {
            lines += ["Chain exists of:", "  \(name(safe)) --> \(name(middle)) --> \(name(unsafeClass))", ""]
        }
        return lines + [
            " Possible interrupt unsafe locking scenario:", "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            "  lock(\(name(unsafeClass)));",
            "                               local_irq_disable();",
            "                               lock(\(name(safe)));",
            "                               lock(\(name(middle)));",
            "  <Interrupt>",
            "    lock(\(name(safe)));", "",
            " *** DEADLOCK ***", "",
        ]
    }

    /// `print_lock_class_header` at `depth`.
    func classHeader(_ c: UInt32, depth: Int) -> [String] {
        let pad = String(repeating: " ", count: depth)
        var lines = ["\(pad)-> \(fullName(c)) {"]
        for bit in 0..<LockUsage.states where usage(c) & LockUsage.flag(bit) != 0 {
            let label = LockUsage.names[bit]
            lines.append("\(pad)   \(label) at:")
            lines += traceLines(classes[Int(c)].usageTraces[bit], indent: 2 * depth + label.count + 8)
        }
        lines.append("\(pad) }")
        lines.append("\(pad) ... key      at: [<0000000000000000>] \(classes[Int(c)].name)")
        return lines
    }

    /// `print_shortest_lock_dependencies`: from the found class back to the root.
    func shortestDependencies(_ path: [(class: UInt32, trace: UInt32?)], rootTrace: LockTrace?) -> [String] {
        var lines: [String] = []
        var depth = path.count - 1
        for step in path.reversed() {
            lines += classHeader(step.class, depth: depth)
            lines.append("\(String(repeating: " ", count: depth)) ... acquired at:")
            if let trace = step.trace { lines += traceLines(trace, indent: 3) } else if let rootTrace { lines += rootTrace.lines(indent: 3) }
            lines.append("")
            depth -= 1
        }
        return lines
    }

    func safeToUnsafeReport(
        _ a: Acquisition, prev: HeldLock,
        safePath: [(class: UInt32, trace: UInt32?)], unsafePath: [(class: UInt32, trace: UInt32?)],
        safeBit: Int, unsafeBit: Int, depth: Int
    ) -> [String] {
        let irq = LockUsage.stateName(safeBit)
        let safe = safePath.last!.class, unsafeClass = unsafePath.last!.class
        let rule = String(repeating: "=", count: 53), dashes = String(repeating: "-", count: 53)
        return [
            "", rule, "WARNING: \(irq)-safe -> \(irq)-unsafe lock order detected", Self.ident, dashes,
            "\(task) \(irqState(a)) is trying to acquire:", lockLine(a), "",
            "and this task is already holding:", lockLine(prev),
            "which would create a new lock dependency:",
            " \(fullName(prev.classIndex)) -> \(fullName(a.classIndex))", "",
            "but this new dependency connects a \(irq)-irq-safe lock:",
            " \(fullName(safe))", "",
            "... which became \(irq)-irq-safe at:",
        ] + traceLines(classes[Int(safe)].usageTraces[safeBit], indent: 2) + [
            "", "to a \(irq)-irq-unsafe lock:",
            " \(fullName(unsafeClass))", "",
            "... which became \(irq)-irq-unsafe at:", "...",
        ] + traceLines(classes[Int(unsafeClass)].usageTraces[unsafeBit], indent: 2) + [
            "", "other info that might help us debug this:", "",
        ] + irqScenario(safe: safe, unsafe: unsafeClass, prev: prev.classIndex, next: a.classIndex)
            + heldLocks(depth: depth)
            + ["", "the dependencies between \(irq)-irq-safe lock and the holding lock:"]
            + shortestDependencies(safePath, rootTrace: nil)
            + ["", "the dependencies between the lock to be acquired", " and \(irq)-irq-unsafe lock:"]
            + shortestDependencies(unsafePath, rootTrace: currentTrace(a))
            + ["", "stack backtrace:"]
    }

    // MARK: - possible irq lock inversion dependency detected

    /// `path` runs from the class whose usage changed to the other class, forwards (taken
    /// after it) or backwards (taken before it).
    func inversionReport(_ a: Acquisition, path: [(class: UInt32, trace: UInt32?)], forwards: Bool, bit: Int, depth: Int) -> [String] {
        let irq = LockUsage.stateName(bit)
        let root = a.classIndex, other = path.last!.class
        let middle = path.count >= 2 ? path[1].class : nil
        var lines = header("WARNING: possible irq lock inversion dependency detected", rule: 56) + [
            "\(task) just changed the state of lock:", lockLine(a),
            forwards
                ? "but this lock took another, \(irq)-unsafe lock in the past:"
                : "but this lock was taken by another, \(irq)-safe lock in the past:",
            " \(fullName(other))", "", "",
            "and interrupts could create inverse lock ordering between them.", "", "",
            "other info that might help us debug this:",
        ]
        lines += forwards
            ? irqScenario(safe: root, unsafe: other, prev: middle ?? root, next: other)
            : irqScenario(safe: other, unsafe: root, prev: middle ?? other, next: root)
        return lines + heldLocks(depth: depth)
            + ["", "the shortest dependencies between 2nd lock and 1st lock:"]
            + shortestDependencies(path, rootTrace: currentTrace(a))
            + ["", "stack backtrace:"]
    }
}
