/// One lock class in the validator's graph (the kernel's `struct lock_class`): a creation
/// site or key, and a subclass. Guarded by the validator's lock.
struct LockClass {
    /// The base name: its first map's label, else the key's name or `kind@file:line`.
    let name: String
    let subclass: Int
    let type: LockdepMap.LockType
    /// Where each usage bit was first set (indexes into the trace table).
    var usageTraces = [UInt32?](repeating: nil, count: LockUsage.states)
    /// Dependencies to classes taken while this one was held (`locks_after`), in the order
    /// they were first seen.
    var after: [LockDependency] = []
    /// Dependencies from classes held when this one was taken (`locks_before`).
    var before: [LockDependency] = []

    /// The name as reports print it: `name`, then `/subclass` unless 0.
    var displayName: String { subclass == 0 ? name : "\(name)/\(subclass)" }
}

/// One end of a dependency A -> B: the other class, and where the dependency was first
/// seen.
struct LockDependency {
    let other: UInt32
    let trace: UInt32
}

/// Where something was first seen: the thread and the acquisition site (the kernel saves
/// a stack trace; irqemu saves one frame).
struct LockTrace {
    let thread: String
    let tid: Int32
    let site: String

    /// The trace as report lines, each indented by `indent` spaces.
    func lines(indent: Int) -> [String] {
        [String(repeating: " ", count: indent) + "\(site) by \(thread)/\(tid)"]
    }
}

/// Usage bits of a class (the kernel's `enum lock_usage_bit`): bit 0 read, bit 1 direction
/// (used in irq / irq enabled), bits 2-3 the state (hardirq, softirq), then the use bits.
enum LockUsage {
    static let usedInHardIRQ = 0
    static let enabledHardIRQ = 2
    static let usedInSoftIRQ = 4
    static let enabledSoftIRQ = 6
    static let used = 8
    static let states = 10

    static func flag(_ bit: Int) -> UInt32 { 1 << UInt32(bit) }

    /// Every used-in-irq bit (write and read, hard and soft).
    static let usedInAll: UInt32 = 0b0011_0011
    /// Every irq-enabled bit.
    static let enabledAll: UInt32 = 0b1100_1100

    /// The kernel's `usage_str`.
    static let names = [
        "IN-HARDIRQ-W", "IN-HARDIRQ-R", "HARDIRQ-ON-W", "HARDIRQ-ON-R",
        "IN-SOFTIRQ-W", "IN-SOFTIRQ-R", "SOFTIRQ-ON-W", "SOFTIRQ-ON-R",
        "INITIAL USE", "INITIAL READ USE",
    ]

    /// The bit a class must not also have (`exclusive_bit`): same state, other direction,
    /// write.
    static func exclusive(_ bit: Int) -> Int { (bit & ~3) | ((bit & 2) ^ 2) }

    /// `HARDIRQ` or `SOFTIRQ` (with `-READ` for a read bit).
    static func stateName(_ bit: Int) -> String {
        (bit >> 2 == 0 ? "HARDIRQ" : "SOFTIRQ") + (bit & 1 != 0 ? "-READ" : "")
    }

    /// Used-in bits turned into the enabled bits that conflict with them, and the reverse
    /// (`exclusive_mask`, with reads folded in).
    static func exclusiveMask(_ mask: UInt32) -> UInt32 {
        var excl = ((mask & enabledAll) >> 2) | ((mask & usedInAll) << 2)
        excl |= (excl & 0b0101_0101) << 1 | (excl & 0b1010_1010) >> 1
        return excl
    }

    /// The `{abcd}` of a class: hardirq write, hardirq read, softirq write, softirq read;
    /// `?` used in irq and with irqs on, `-` used in irq, `+` with irqs on, `.` neither.
    static func string(_ mask: UInt32) -> String {
        var s = "{"
        for state in 0..<2 {
            for read in 0..<2 {
                let usedIn = mask & flag(state * 4 + read) != 0
                let enabled = mask & flag(state * 4 + 2 + read) != 0
                s.append(usedIn && enabled ? "?" : usedIn ? "-" : enabled ? "+" : ".")
            }
        }
        return s + "}"
    }
}
