/// `request_irq` flags, with the kernel's values (include/linux/interrupt.h).
public struct IRQFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IRQF_TRIGGER_RISING`
    public static let triggerRising = IRQFlags(rawValue: 0x0000_0001)
    /// `IRQF_TRIGGER_FALLING`
    public static let triggerFalling = IRQFlags(rawValue: 0x0000_0002)
    /// `IRQF_TRIGGER_HIGH`
    public static let triggerHigh = IRQFlags(rawValue: 0x0000_0004)
    /// `IRQF_TRIGGER_LOW`
    public static let triggerLow = IRQFlags(rawValue: 0x0000_0008)
    /// `IRQF_SHARED`: other actions may share the line.
    public static let shared = IRQFlags(rawValue: 0x0000_0080)
    /// `IRQF_PROBE_SHARED`: a sharing mismatch is expected; do not print it.
    public static let probeShared = IRQFlags(rawValue: 0x0000_0100)
    /// `IRQF_PERCPU`
    public static let perCPU = IRQFlags(rawValue: 0x0000_0400)
    /// `IRQF_ONESHOT`: keep the line masked until the threaded handler has run.
    public static let oneShot = IRQFlags(rawValue: 0x0000_2000)
    /// `IRQF_NO_THREAD`
    public static let noThread = IRQFlags(rawValue: 0x0001_0000)
    /// `IRQF_NO_AUTOEN`: do not enable the line on request; `enableIRQ` starts it.
    public static let noAutoEnable = IRQFlags(rawValue: 0x0008_0000)
    /// `IRQF_COND_ONESHOT`: join a ONESHOT line (and become ONESHOT). `requestIRQ` adds it.
    public static let condOneShot = IRQFlags(rawValue: 0x0020_0000)

    /// `IRQF_TRIGGER_MASK`
    public static let triggerMask: IRQFlags = [.triggerRising, .triggerFalling, .triggerHigh, .triggerLow]
    public static let levelTriggers: IRQFlags = [.triggerHigh, .triggerLow]
    public static let edgeTriggers: IRQFlags = [.triggerRising, .triggerFalling]

    /// The trigger bits alone.
    public var trigger: IRQFlags { intersection(.triggerMask) }
    /// Whether the trigger bits ask for a level-triggered line.
    public var isLevel: Bool { !intersection(.levelTriggers).isEmpty }

    /// The kernel's `%08x` rendering, as in `genirq: Flags mismatch` lines.
    public var hex: String {
        let digits = String(rawValue, radix: 16)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    public var description: String {
        let names: [(IRQFlags, String)] = [
            (.triggerRising, "TRIGGER_RISING"), (.triggerFalling, "TRIGGER_FALLING"),
            (.triggerHigh, "TRIGGER_HIGH"), (.triggerLow, "TRIGGER_LOW"), (.shared, "SHARED"),
            (.probeShared, "PROBE_SHARED"), (.perCPU, "PERCPU"), (.oneShot, "ONESHOT"),
            (.noThread, "NO_THREAD"), (.noAutoEnable, "NO_AUTOEN"), (.condOneShot, "COND_ONESHOT"),
        ]
        let set = names.filter { contains($0.0) }.map(\.1)
        return set.isEmpty ? "0x\(hex)" : "0x\(hex) (\(set.joined(separator: "|")))"
    }
}
