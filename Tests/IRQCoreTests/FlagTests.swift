import Foundation
import IRQEmu
import SystemPackage
import Synchronization
import TestSupport
import Testing

/// The kernel's remaining request flags (rust/kernel/irq/flags.rs): accepted, with the
/// kernel's values and sharing rules, and each with the kernel's meaning where one applies
/// in userspace.
@Suite(.timeLimit(.minutes(2)))
struct FlagTests {
    @Test func valuesAndNamesAreTheKernels() {
        #expect(IRQFlags.timer.rawValue == 0x14200)
        #expect(IRQFlags.timer.isSuperset(of: [.noSuspend, .noThread]))
        let values: [(IRQFlags, UInt32)] = [
            (.noBalancing, 0x800), (.irqPoll, 0x1000), (.noSuspend, 0x4000), (.forceResume, 0x8000),
            (.earlyResume, 0x20000), (.condSuspend, 0x40000), (.noDebug, 0x100000),
        ]
        for (flag, value) in values { #expect(flag.rawValue == value) }
        #expect(IRQFlags.timer.description == "0x00014200 (TIMER|NO_SUSPEND|NO_THREAD)")
    }

    /// `request_threaded_irq`'s EINVAL checks: COND_SUSPEND needs SHARED; NO_SUSPEND and
    /// COND_SUSPEND exclude each other. Nothing is requested.
    @Test func condSuspendRules() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let errors = try onThread { () -> [IRQError?] in
            [
                caught(IRQError.self) { try controller.requestIRQ(irq, flags: .condSuspend, name: "a") { _ in .handled } },
                caught(IRQError.self) {
                    try controller.requestIRQ(irq, flags: [.shared, .noSuspend, .condSuspend], name: "b", devID: Cookie()) { _ in .handled }
                },
            ]
        }
        #expect(errors.map { $0?.errno } == [.invalidArgument, .invalidArgument])
        #expect(try controller.stats(irq).actions.isEmpty)
    }

    /// kernel/irq/pm.c's install checks warn (and keep the action): a NO_SUSPEND action
    /// beside one that is neither NO_SUSPEND nor COND_SUSPEND, and FORCE_RESUME on some but
    /// not all actions. A COND_SUSPEND sharer is fine.
    @Test func mixedSuspendFlagsOnASharedLineWarn() throws {
        let controller = try IRQController()
        let (ok, mixed, force) = (try controller.addSoftwareLine(), try controller.addSoftwareLine(), try controller.addSoftwareLine())
        try onThread {
            try controller.requestIRQ(ok, flags: [.shared, .noSuspend], name: "ok-a", devID: Cookie()) { _ in .handled }
            try controller.requestIRQ(ok, flags: [.shared, .condSuspend], name: "ok-b", devID: Cookie()) { _ in .handled }
            try controller.requestIRQ(mixed, flags: [.shared, .noSuspend], name: "mixed-a", devID: Cookie()) { _ in .handled }
            try controller.requestIRQ(mixed, flags: .shared, name: "mixed-b", devID: Cookie()) { _ in .handled }
            try controller.requestIRQ(force, flags: [.shared, .forceResume], name: "force-a", devID: Cookie()) { _ in .handled }
            try controller.requestIRQ(force, flags: .shared, name: "force-b", devID: Cookie()) { _ in .handled }
        }
        let warnings = controller.log.reports(.warning)
        #expect(warnings.map(\.headline) == Array(repeating: "WARNING: at kernel/irq/pm.c irq_pm_install_action", count: 2))
        #expect(warnings.map { $0.lines[1] } == [
            "IRQF_NO_SUSPEND on 1 of 2 actions of irq \(mixed), and IRQF_COND_SUSPEND on 0",
            "IRQF_FORCE_RESUME on 1 of 2 actions of irq \(force)",
        ])
        #expect(try controller.stats(mixed).actions == ["mixed-a", "mixed-b"], "the kernel warns and keeps the action")
    }

    /// `suspendDeviceIRQs` disables every line but those with a NO_SUSPEND action; an edge
    /// raised while suspended is kept pending and replayed by `resumeDeviceIRQs`. EARLY_RESUME
    /// lines come back in the early phase only; FORCE_RESUME re-enables a line that was never
    /// suspended (its depth back at 0); a driver's own disable survives the cycle.
    @Test func suspendAndResume() throws {
        let controller = try IRQController()
        let plain = try controller.addSoftwareLine(), awake = try controller.addSoftwareLine()
        let early = try controller.addSoftwareLine(), driverDisabled = try controller.addSoftwareLine()
        let hits = (plain: Hits(), awake: Hits(), early: Hits())
        let (suspended, whileSuspended, earlyResumed, resumed, afterResume) = try onThread {
            () -> ([IRQNumber], [Int], [IRQNumber], [IRQNumber], [Int]) in
            try controller.requestIRQ(plain, name: "plain") { _ in hits.plain.hit(); return .handled }
            try controller.requestIRQ(awake, flags: .noSuspend, name: "awake") { _ in hits.awake.hit(); return .handled }
            try controller.requestIRQ(early, flags: .earlyResume, name: "early") { _ in hits.early.hit(); return .handled }
            try controller.requestIRQ(driverDisabled, name: "off") { _ in .handled }
            try controller.disableIRQ(driverDisabled)
            let suspended = try controller.suspendDeviceIRQs()
            for irq in [plain, awake, early] { try controller.raiseAndQuiesce(irq) }
            let whileSuspended = [hits.plain.value, hits.awake.value, hits.early.value]
            let earlyResumed = try controller.resumeDeviceIRQs(early: true)
            let resumed = try controller.resumeDeviceIRQs()
            try controller.quiesce()
            return (suspended, whileSuspended, earlyResumed, resumed, [hits.plain.value, hits.awake.value, hits.early.value])
        }
        #expect(suspended == [plain, early, driverDisabled])
        #expect(whileSuspended == [0, 1, 0], "only the NO_SUSPEND line fired while suspended")
        #expect(earlyResumed == [early])
        #expect(resumed == [plain, driverDisabled])
        #expect(afterResume == [1, 1, 1], "the pending edges were replayed at resume")
        #expect(try controller.depth(of: driverDisabled) == 1, "the driver's own disable survived")
    }

    @Test func forceResumeEnablesALineThatStayedAwake() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let resumed = try onThread { () -> [IRQNumber] in
            try controller.requestIRQ(irq, flags: [.noSuspend, .forceResume], name: "forced") { _ in .handled }
            let suspended = try controller.suspendDeviceIRQs()
            guard suspended.isEmpty else { throw TimedOut() }
            return try controller.resumeDeviceIRQs()
        }
        #expect(resumed == [irq])
        #expect(try controller.depth(of: irq) == 0 && !controller.stats(irq).masked)
    }

    /// `setAffinity` moves a line to another CPU (the userspace smp_affinity write);
    /// NOBALANCING and PERCPU lines refuse with EIO.
    @Test func affinityAndNoBalancing() throws {
        let controller = try IRQController(cpus: 2)
        let movable = try controller.addEventFDLine(cpu: 0), pinned = try controller.addSoftwareLine(cpu: 0)
        let perCPU = try controller.addSoftwareLine(cpu: 0)
        let (perCPUCounts, errors) = try onThread { () -> ([UInt64], [IRQError?]) in
            try controller.requestIRQ(movable, name: "movable") { _ in .handled }
            try controller.requestIRQ(pinned, flags: .noBalancing, name: "pinned") { _ in .handled }
            try controller.requestIRQ(perCPU, flags: .perCPU, name: "percpu") { _ in .handled }
            try controller.raiseAndQuiesce(movable, times: 3)
            try controller.setAffinity(movable, cpu: 1)
            try controller.raiseAndQuiesce(movable, times: 5)
            let errors = [
                caught(IRQError.self) { try controller.setAffinity(pinned, cpu: 1) },
                caught(IRQError.self) { try controller.setAffinity(perCPU, cpu: 1) },
                caught(IRQError.self) { try controller.setAffinity(movable, cpu: 2) },
            ]
            return (try controller.stats(movable).perCPU, errors)
        }
        #expect(perCPUCounts == [3, 5], "the line moved to CPU 1")
        #expect(try controller.affinity(of: movable) == 1 && controller.affinity(of: pinned) == 0)
        #expect(errors.map { $0?.errno } == [.ioError, .ioError, .invalidArgument])
    }

    /// With `irqFixup`, an interrupt no handler of its line claims polls the other shared
    /// lines (spurious.c `misrouted_irq`): a device whose interrupt arrives on the wrong line
    /// is still served. Under `.irqpoll`, every interrupt of a line whose first action has
    /// IRQPOLL polls too; never a PERCPU line, and never with fixup off.
    @Test(arguments: [IRQFixup.off, .irqfixup, .irqpoll])
    func misroutedInterruptsArePolled(fixup: IRQFixup) throws {
        let controller = try IRQController(irqFixup: fixup)
        let wrong = try controller.addSoftwareLine(), right = try controller.addSoftwareLine()
        let poller = try controller.addSoftwareLine(), percpu = try controller.addSoftwareLine()
        let pending = Atomic<Bool>(false)
        let served = Hits(), percpuRuns = Hits()
        try onThread {
            try controller.requestIRQ(wrong, flags: .shared, name: "wrong", devID: Cookie()) { _ in .none }
            try controller.requestIRQ(right, flags: .shared, name: "device", devID: Cookie()) { _ in
                guard pending.exchange(false, ordering: .acquiringAndReleasing) else { return .none }
                served.hit()
                return .handled
            }
            try controller.requestIRQ(poller, flags: [.shared, .irqPoll], name: "poller", devID: Cookie()) { _ in .handled }
            try controller.requestIRQ(percpu, flags: [.shared, .perCPU], name: "percpu", devID: Cookie()) { _ in
                percpuRuns.hit()
                return .none
            }
            // The device's interrupt arrives on the wrong line.
            pending.store(true, ordering: .releasing)
            try controller.raiseAndQuiesce(wrong)
            // A handled interrupt of the IRQPOLL line, with the device pending again.
            pending.store(true, ordering: .releasing)
            try controller.raiseAndQuiesce(poller)
        }
        let expected = switch fixup {
        case .off: 0
        case .irqfixup: 1
        case .irqpoll: 2
        }
        #expect(served.value == expected)
        #expect(percpuRuns.value == 0, "a PERCPU line is never polled")
        #expect(try controller.stats(right).handled == 0, "polled runs are not counted as the line's interrupts")
        if fixup != .off {
            #expect(controller.log.messages.prefix(2).contains { $0.hasPrefix("Misrouted IRQ fixup") })
        }
    }

    /// NO_DEBUG on a PERCPU line skips the spurious accounting (`note_interrupt`); without
    /// PERCPU the kernel ignores it.
    @Test func noDebugSkipsSpuriousAccountingOnPerCPULines() throws {
        let controller = try IRQController()
        let quiet = try controller.addSoftwareLine(), ignored = try controller.addSoftwareLine()
        try onThread {
            try controller.requestIRQ(quiet, flags: [.noDebug, .perCPU], name: "quiet") { _ in .none }
            try controller.requestIRQ(ignored, flags: .noDebug, name: "ignored") { _ in .none }
            try controller.raiseAndQuiesce(quiet, times: 5)
            try controller.raiseAndQuiesce(ignored, times: 5)
        }
        #expect(try controller.stats(quiet).unhandled == 0)
        #expect(try controller.stats(ignored).unhandled == 5)
    }
}
