import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// request_irq / request_threaded_irq: the errors and sharing rules of manage.c.
@Suite(.timeLimit(.minutes(1)))
struct RequestTests {
    @Test func invalidRequestsAreEINVALAndChangeNothing() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let cookie = Cookie()
        let errors = try onThread { () -> [IRQError?] in
            [
                caught(IRQError.self) { try controller.requestIRQ(99, name: "nope") { _ in .handled } },
                caught(IRQError.self) { try controller.requestIRQ(0, name: "zero") { _ in .handled } },
                caught(IRQError.self) {
                    try controller.requestThreadedIRQ(irq, name: "none", handler: nil, thread: nil)
                },
                caught(IRQError.self) { try controller.requestIRQ(irq, flags: .shared, name: "anon") { _ in .handled } },
                caught(IRQError.self) {
                    try controller.requestIRQ(irq, flags: [.shared, .noAutoEnable], name: "x", devID: cookie) { _ in .handled }
                },
                caught(IRQError.self) {
                    try controller.requestThreadedIRQ(irq, name: "lazy", handler: nil, thread: { _ in .handled })
                },
                caught(IRQError.self) {
                    try controller.requestIRQ(irq, flags: [.triggerRising, .triggerHigh], name: "both") { _ in .handled }
                },
            ]
        }
        #expect(errors.allSatisfy { $0?.errno == .invalidArgument })
        #expect(errors[0] == .invalidArgument(irq: 99, reason: "no such irq"))
        #expect(errors[1] == .invalidArgument(irq: 0, reason: "no such irq"))
        #expect(errors[2] == .invalidArgument(irq: irq, reason: "no handler and no thread function"))
        #expect(errors[3] == .invalidArgument(irq: irq, reason: "IRQF_SHARED without a dev_id"))
        #expect(controller.log.messages.contains("genirq: Threaded irq requested with handler=NULL and !ONESHOT for lazy (irq \(irq))"))
        #expect(try controller.stats(irq).actions.isEmpty)
        // The line is still free to request.
        try onThread { try controller.requestIRQ(irq, name: "ok") { _ in .handled } }
        #expect(try controller.stats(irq).actions == ["ok"])
    }

    @Test func sharingRulesAndTheFlagsMismatchLine() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let a = Cookie("a"), b = Cookie("b"), c = Cookie("c")
        let results = try onThread { () -> [IRQError?] in
            try controller.requestIRQ(irq, flags: .shared, name: "first", devID: a) { _ in .handled }
            return [
                // Not SHARED on both.
                caught(IRQError.self) { try controller.requestIRQ(irq, name: "exclusive", devID: b) { _ in .handled } },
                // Different trigger.
                caught(IRQError.self) {
                    try controller.requestIRQ(irq, flags: [.shared, .triggerFalling], name: "falling", devID: b) { _ in .handled }
                },
                // Different PERCPU.
                caught(IRQError.self) {
                    try controller.requestIRQ(irq, flags: [.shared, .perCPU], name: "percpu", devID: b) { _ in .handled }
                },
                // Expected mismatch: no message.
                caught(IRQError.self) {
                    try controller.requestIRQ(irq, flags: .probeShared, name: "probe", devID: b) { _ in .handled }
                },
                // Matching: joins, with the line's trigger.
                caught(IRQError.self) { try controller.requestIRQ(irq, flags: .shared, name: "second", devID: c) { _ in .handled } },
            ]
        }
        #expect(results[0...3].allSatisfy { $0?.errno == .resourceBusy })
        #expect(results[4] == nil)
        let mismatches = controller.log.messages.filter { $0.hasPrefix("genirq: Flags mismatch") }
        #expect(mismatches == [
            "genirq: Flags mismatch irq \(irq). 00200001 (exclusive) vs. 00200081 (first)",
            "genirq: Flags mismatch irq \(irq). 00200082 (falling) vs. 00200081 (first)",
            "genirq: Flags mismatch irq \(irq). 00200481 (percpu) vs. 00200081 (first)",
        ])
        #expect(try controller.stats(irq).actions == ["first", "second"])
    }

    /// A software line whose first action is a shared ONESHOT threaded one named "threaded";
    /// `join` then makes two more requests (dev_ids `b`, `c`) on a thread and returns what
    /// each threw.
    private func joiningAOneShotLine(
        _ join: @escaping @Sendable (IRQController, IRQNumber, Cookie, Cookie) -> [IRQError?]
    ) throws -> (IRQController, IRQNumber, [IRQError?]) {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let a = Cookie(), b = Cookie(), c = Cookie()
        let results = try onThread { () -> [IRQError?] in
            try controller.requestThreadedIRQ(
                irq, flags: [.shared, .oneShot], name: "threaded", devID: a, handler: nil, thread: { _ in .handled })
            return join(controller, irq, b, c)
        }
        return (controller, irq, results)
    }

    /// request_irq adds COND_ONESHOT and so may join a line whose first action is ONESHOT;
    /// a plain threaded request without ONESHOT may not.
    @Test func requestIRQJoinsAOneShotLine() throws {
        let (controller, irq, results) = try joiningAOneShotLine { controller, irq, b, c in
            [
                caught(IRQError.self) { try controller.requestIRQ(irq, flags: .shared, name: "plain", devID: b) { _ in .handled } },
                caught(IRQError.self) {
                    try controller.requestThreadedIRQ(
                        irq, flags: .shared, name: "not-oneshot", devID: c, handler: { _ in .wakeThread }, thread: { _ in .handled })
                },
            ]
        }
        #expect(results[0] == nil)
        #expect(results[1]?.errno == .resourceBusy)
        #expect(controller.log.messages.contains("genirq: Flags mismatch irq \(irq). 00000081 (not-oneshot) vs. 00002081 (threaded)"))
    }

    /// `__setup_irq` decides a SHARED or trigger mismatch before COND_ONESHOT makes the new
    /// action ONESHOT, so the line prints the flags as requested; a later PERCPU mismatch
    /// prints them with ONESHOT added.
    @Test func flagsMismatchLinePrintsTheFlagsAtTheKernelsDecision() throws {
        let (controller, irq, results) = try joiningAOneShotLine { controller, irq, b, c in
            [
                caught(IRQError.self) { try controller.requestIRQ(irq, name: "exclusive", devID: b) { _ in .handled } },
                caught(IRQError.self) {
                    try controller.requestIRQ(irq, flags: [.shared, .perCPU], name: "percpu", devID: c) { _ in .handled }
                },
            ]
        }
        #expect(results.allSatisfy { $0?.errno == .resourceBusy })
        #expect(controller.log.messages.filter { $0.hasPrefix("genirq: Flags mismatch") } == [
            "genirq: Flags mismatch irq \(irq). 00200001 (exclusive) vs. 00002081 (threaded)",
            "genirq: Flags mismatch irq \(irq). 00202481 (percpu) vs. 00002081 (threaded)",
        ])
    }

    @Test func noAutoEnableStartsDisabledUntilEnabled() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let hits = Hits()
        let (depth, hitsWhileDisabled) = try onThread { () -> (Int, Int) in
            try controller.requestIRQ(irq, flags: .noAutoEnable, name: "later") { _ in hits.hit(); return .handled }
            let depth = try controller.depth(of: irq)
            try controller.raise(irq)
            try controller.quiesce()
            let hitsWhileDisabled = hits.value
            try controller.enableIRQ(irq)
            try controller.quiesce()
            return (depth, hitsWhileDisabled)
        }
        #expect(depth == 1)
        #expect(hitsWhileDisabled == 0)
        #expect(hits.value == 1, "the edge raised while disabled was replayed once")
    }

    /// request_irq may sleep: inside a read-side section or under a spinlock it is
    /// reported (the BUG lines, to the controller's log) and refused, and adds no action.
    @Test func requestInAtomicContextIsReportedAndRefused() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let spinlock = SpinLock(0)
        let errors = try onThread { () -> [IRQError?] in
            let request: @Sendable () -> IRQError? = {
                caught(IRQError.self) { try controller.requestIRQ(irq, name: "atomic") { _ in .handled } }
            }
            let threaded: @Sendable () -> IRQError? = {
                caught(IRQError.self) {
                    try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "atomic-t", handler: nil, thread: { _ in .handled })
                }
            }
            return [
                RCU.read { request() }, spinlock.withLock { _ in request() },
                RCU.read { threaded() }, spinlock.withLock { _ in threaded() },
            ]
        }
        #expect(errors.count == 4)
        for error in errors {
            guard case .atomicContext(let violation)? = error else {
                Issue.record("not refused as atomic context: \(String(describing: error))")
                continue
            }
            #expect(violation.report.lines.contains { $0.hasPrefix("BUG: sleeping function called from invalid context at IRQCoreTests/RequestTests.swift:") })
        }
        let reports = controller.log.reports(.sleepInAtomic)
        #expect(reports.map(\.function) == ["request_irq", "request_irq", "request_threaded_irq", "request_threaded_irq"])
        #expect(reports.first?.lines.contains("RCU nest depth: 1, expected: 0") == true)
        #expect(reports.dropFirst().first?.lines.contains("preempt_count: 1, expected: 0") == true)
        #expect(try controller.stats(irq).actions.isEmpty, "no action was added")
    }

    @Test func wakeThreadWithoutAThreadFunctionWarnsOnce() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        try onThread {
            try controller.requestIRQ(irq, name: "confused") { _ in .wakeThread }
            try controller.raiseAndQuiesce(irq, times: 3)
        }
        let warnings = controller.log.reports.filter {
            $0.headline == "WARNING: IRQ \(irq) device confused returned IRQ_WAKE_THREAD but no thread function available."
        }
        #expect(warnings.count == 1)
    }
}

extension IRQController {
    /// A timer line cannot be level-triggered: only edge lines are created for timers, so
    /// asking for a level software-less line of that kind fails.
    func addTimerLineLevel() throws(IRQError) -> IRQNumber {
        let irq = try addTimerLine()
        try requestIRQ(irq, flags: .triggerLow, name: "timer-level") { _ in .handled }
        return irq
    }
}
