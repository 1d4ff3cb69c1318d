/// A line's state and counters, as `/proc/interrupts` and `/proc/irq/N/` would show them.
public struct IRQLineStats: Sendable, Hashable {
    /// The line.
    public let irq: IRQNumber
    /// The source kind (`eventfd`, `signal`, `timerfd`, `soft`).
    public let chip: String
    /// The source's hardware number (the fd, signal number or software index).
    public let hwirq: Int
    /// Whether the line is level-triggered (its first request set the trigger).
    public let isLevel: Bool
    /// Action names in registration order.
    public let actions: [String]
    /// Interrupts handled per CPU (the `/proc/interrupts` columns).
    public let perCPU: [UInt64]
    /// Raises the source reported (eventfd writes, signals, timer expirations, software
    /// raises); raises that arrive before the handler runs fold into one interrupt.
    public let raised: UInt64
    /// Interrupts that arrived with no action on the line.
    public let spurious: UInt64
    /// Interrupts no handler claimed.
    public let unhandled: UInt64
    /// The disable depth (0: enabled).
    public let depth: Int
    /// Whether the line is masked at the source now.
    public let masked: Bool
    /// Whether an edge is held pending, to be replayed when the line is enabled.
    public let pending: Bool
    /// Disabled by the spurious detector (`nobody cared`).
    public let disabledAsSpurious: Bool

    /// Interrupts handled, all CPUs.
    public var handled: UInt64 { perCPU.reduce(0, &+) }
}

extension IRQController {
    /// The line's counters and state.
    public func stats(_ irq: IRQNumber) throws(IRQError) -> IRQLineStats {
        let d = try core.descriptor(irq)
        return d.lock.withLock { d.statsLocked }
    }

    /// A `/proc/interrupts`-style table: a `CPUn` header, and per line with an action the
    /// per-CPU counts, source, hwirq, trigger, flow and action names.
    public var procInterrupts: String {
        let all = core.allDescriptors.map { d in d.lock.withLock { d.statsLocked } }
        let maxIRQ = all.map(\.irq.rawValue).max() ?? 0
        let precision = max(3, String(maxIRQ).count)
        var out = String(repeating: " ", count: precision + 8)
        for cpu in 0..<cpuCount { out += pad("CPU\(cpu)", right: 11) }
        out += "\n"
        for line in all where !line.actions.isEmpty {
            out += pad(String(line.irq.rawValue), left: precision) + ": "
            for count in line.perCPU { out += pad(String(count), left: 10) + " " }
            out += " " + pad(line.chip, left: 8)
            out += " " + pad(String(line.hwirq), left: precision)
            out += " " + pad(line.isLevel ? "Level" : "Edge", right: 8)
            out += "-" + pad(line.isLevel ? "level" : "edge", right: 8)
            out += "  " + line.actions.joined(separator: ", ")
            out += "\n"
        }
        return out
    }
}

extension IRQDescriptor {
    var statsLocked: IRQLineStats {
        IRQLineStats(
            irq: irq, chip: source.chipName, hwirq: source.hwirq, isLevel: isLevel,
            actions: currentActions.map(\.name), perCPU: unsafe Array(perCPU), raised: raised &+ triggered.load(ordering: .relaxed), spurious: spurious,
            unhandled: unhandledTotal, depth: depth, masked: masked, pending: pending,
            disabledAsSpurious: spuriousDisabled)
    }
}

private func pad(_ s: String, left width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}

private func pad(_ s: String, right width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
