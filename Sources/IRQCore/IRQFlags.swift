/// `request_irq` flags, with the kernel's names and values (include/linux/interrupt.h,
/// rust/kernel/irq/flags.rs).
///
/// Sharing rules, as `request_threaded_irq` and `__setup_irq` apply them: actions on one
/// line must agree on SHARED, the trigger type, ONESHOT (or join with COND_ONESHOT) and
/// PERCPU, else `EBUSY`; COND_SUSPEND needs SHARED, and NO_SUSPEND excludes COND_SUSPEND,
/// else `EINVAL`; mixing NO_SUSPEND (or FORCE_RESUME) with actions that lack it warns, as
/// kernel/irq/pm.c does. What each flag does here is on the flag.
public struct IRQFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    /// The kernel's `IRQF_*` bits.
    public let rawValue: UInt32
    /// The flags whose `IRQF_*` bits are `rawValue`.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IRQF_TRIGGER_RISING`: an edge line.
    public static let triggerRising = IRQFlags(rawValue: 0x0000_0001)
    /// `IRQF_TRIGGER_FALLING`: an edge line.
    public static let triggerFalling = IRQFlags(rawValue: 0x0000_0002)
    /// `IRQF_TRIGGER_HIGH`: a level line (needs a source with a level input).
    public static let triggerHigh = IRQFlags(rawValue: 0x0000_0004)
    /// `IRQF_TRIGGER_LOW`: a level line (needs a source with a level input).
    public static let triggerLow = IRQFlags(rawValue: 0x0000_0008)
    /// `IRQF_SHARED`: other actions may share the line; requires a `devID`.
    public static let shared = IRQFlags(rawValue: 0x0000_0080)
    /// `IRQF_PROBE_SHARED`: a sharing mismatch is expected; do not print it.
    public static let probeShared = IRQFlags(rawValue: 0x0000_0100)
    /// `IRQF_TIMER`: a timer interrupt (`__IRQF_TIMER | IRQF_NO_SUSPEND | IRQF_NO_THREAD`).
    /// Its line is never polled as a misrouted interrupt (`irqpoll`) and stays on through
    /// `suspendDeviceIRQs()`.
    public static let timer = IRQFlags(rawValue: 0x0001_4200)
    /// `IRQF_PERCPU`: a per-CPU interrupt. Must agree across sharers; never polled.
    public static let perCPU = IRQFlags(rawValue: 0x0000_0400)
    /// `IRQF_NOBALANCING`: the line is excluded from balancing: `setAffinity` (the
    /// userspace `/proc/irq/N/smp_affinity` write) refuses to move it (`EIO`).
    public static let noBalancing = IRQFlags(rawValue: 0x0000_0800)
    /// `IRQF_IRQPOLL`: with the controller's `irqFixup` at `.irqpoll`, every interrupt on
    /// this line (its first action's flag counts) polls the other shared lines for a
    /// misrouted interrupt, as spurious.c's `misrouted_irq` does.
    public static let irqPoll = IRQFlags(rawValue: 0x0000_1000)
    /// `IRQF_ONESHOT`: keep the line masked until the threaded handler has run.
    public static let oneShot = IRQFlags(rawValue: 0x0000_2000)
    /// `IRQF_NO_SUSPEND`: the line stays enabled through `suspendDeviceIRQs()` (one such
    /// action keeps its whole line on).
    public static let noSuspend = IRQFlags(rawValue: 0x0000_4000)
    /// `IRQF_FORCE_RESUME`: `resumeDeviceIRQs()` enables the line even if it was not
    /// suspended (all or none of a line's actions should have it).
    public static let forceResume = IRQFlags(rawValue: 0x0000_8000)
    /// `IRQF_NO_THREAD`: the primary handler must not be force-threaded. irqemu never
    /// force-threads (no `threadirqs`), so it is accepted and has no effect, as in such a
    /// kernel.
    public static let noThread = IRQFlags(rawValue: 0x0001_0000)
    /// `IRQF_EARLY_RESUME`: the line is resumed in the early phase
    /// (`resumeDeviceIRQs(early: true)`, the kernel's syscore resume); its first action's
    /// flag counts.
    public static let earlyResume = IRQFlags(rawValue: 0x0002_0000)
    /// `IRQF_COND_SUSPEND`: a shared action that tolerates staying on through suspend
    /// beside a NO_SUSPEND action. Requires SHARED; excludes NO_SUSPEND.
    public static let condSuspend = IRQFlags(rawValue: 0x0004_0000)
    /// `IRQF_NO_AUTOEN`: do not enable the line on request; `enableIRQ` starts it.
    public static let noAutoEnable = IRQFlags(rawValue: 0x0008_0000)
    /// `IRQF_NO_DEBUG`: no spurious-interrupt accounting for the line (`note_interrupt` is
    /// skipped). Honoured, as in the kernel, only when the first action is also PERCPU.
    public static let noDebug = IRQFlags(rawValue: 0x0010_0000)
    /// `IRQF_COND_ONESHOT`: join a ONESHOT line (and become ONESHOT). `requestIRQ` adds it.
    public static let condOneShot = IRQFlags(rawValue: 0x0020_0000)

    /// `IRQF_TRIGGER_MASK`
    public static let triggerMask: IRQFlags = [.triggerRising, .triggerFalling, .triggerHigh, .triggerLow]
    /// The level trigger bits.
    public static let levelTriggers: IRQFlags = [.triggerHigh, .triggerLow]
    /// The edge trigger bits.
    public static let edgeTriggers: IRQFlags = [.triggerRising, .triggerFalling]
    /// `__IRQF_TIMER`, the bit `timer` adds to NO_SUSPEND and NO_THREAD.
    static let timerBit = IRQFlags(rawValue: 0x0000_0200)

    /// The trigger bits alone.
    public var trigger: IRQFlags { intersection(.triggerMask) }
    /// Whether the trigger bits ask for a level-triggered line.
    public var isLevel: Bool { !intersection(.levelTriggers).isEmpty }

    /// The kernel's `%08x` rendering, as in `genirq: Flags mismatch` lines.
    public var hex: String {
        let digits = String(rawValue, radix: 16)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// The value in hex, then the flags' kernel names without `IRQF_`: `0x00000080 (SHARED)`.
    public var description: String {
        let names: [(IRQFlags, String)] = [
            (.triggerRising, "TRIGGER_RISING"), (.triggerFalling, "TRIGGER_FALLING"),
            (.triggerHigh, "TRIGGER_HIGH"), (.triggerLow, "TRIGGER_LOW"), (.shared, "SHARED"),
            (.probeShared, "PROBE_SHARED"), (.timerBit, "TIMER"), (.perCPU, "PERCPU"),
            (.noBalancing, "NOBALANCING"), (.irqPoll, "IRQPOLL"), (.oneShot, "ONESHOT"),
            (.noSuspend, "NO_SUSPEND"), (.forceResume, "FORCE_RESUME"), (.noThread, "NO_THREAD"),
            (.earlyResume, "EARLY_RESUME"), (.condSuspend, "COND_SUSPEND"), (.noAutoEnable, "NO_AUTOEN"),
            (.noDebug, "NO_DEBUG"), (.condOneShot, "COND_ONESHOT"),
        ]
        let set = names.filter { contains($0.0) }.map(\.1)
        return set.isEmpty ? "0x\(hex)" : "0x\(hex) (\(set.joined(separator: "|")))"
    }
}
