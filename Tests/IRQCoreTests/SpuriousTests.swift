import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// Stuck-interrupt detection at exactly the kernel's threshold, driven by the software
/// source, one interrupt per raise. Serialized: these runs are long and timing-sensitive.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SpuriousTests {
    /// Over a window of 100,000 interrupts that starts at the first unhandled one: more
    /// than 99,900 unhandled disables the line (99,901 does), 99,900 does not.
    @Test(arguments: [99_901, 99_900])
    func nobodyCaredAtExactlyTheKernelsThreshold(unhandled: Int) throws {
        // The detector restarts its count when two unhandled interrupts are more than the
        // reset interval apart; a stall of a loaded CI machine must not do that here.
        let controller = try IRQController(mode: .polling, unhandledResetInterval: .seconds(30))
        let irq = try controller.addSoftwareLine()
        let index = Atomic<Int>(0)
        try onThread(timeout: .seconds(280)) {
            try controller.requestIRQ(irq, name: "stuck-device") { _ in
                // The first `unhandled` interrupts are not ours; the rest are.
                index.add(1, ordering: .relaxed).newValue <= unhandled ? .none : .handled
            }
            try controller.raiseAndQuiesce(irq, times: 100_000)
            try controller.raiseAndQuiesce(irq)  // one more: delivered only if the line is still enabled
        }
        let stats = try controller.stats(irq)
        let report = controller.log.reports.first { $0.headline.contains("nobody cared") }
        if unhandled > 99_900 {
            #expect(stats.handled == 100_000)
            #expect(stats.disabledAsSpurious)
            #expect(stats.depth == 1)
            // The kernel's order: the headline, the stack dump, the handlers, the disable.
            let shape = report?.lines.map { line in
                line.hasPrefix("CPU: ") ? "CPU: …" : line.hasPrefix(" note_interrupt at ") ? " note_interrupt at …" : line
            }
            #expect(shape == [
                "irq \(irq): nobody cared (try booting with the \"irqpoll\" option)",
                "CPU: …",
                "Call Trace:",
                " note_interrupt at …",
                "handlers:",
                "[<handler>] stuck-device",
                "Disabling IRQ #\(irq)",
            ])
        } else {
            #expect(stats.handled == 100_001)
            #expect(!stats.disabledAsSpurious)
            #expect(report == nil)
        }
    }

    /// Nothing is counted until the first unhandled interrupt: 1,000 handled ones before it
    /// do not shorten the window, so 99,901 unhandled and 99 handled after them disable the
    /// line (counted from the start, the window would close at 99,000 unhandled).
    @Test func nothingIsCountedUntilTheFirstUnhandled() throws {
        let controller = try IRQController(mode: .polling, unhandledResetInterval: .seconds(30))
        let irq = try controller.addSoftwareLine()
        let index = Atomic<Int>(0)
        try onThread(timeout: .seconds(280)) {
            try controller.requestIRQ(irq, name: "late-stuck") { _ in
                let i = index.add(1, ordering: .relaxed).newValue
                return i > 1_000 && i <= 100_901 ? .none : .handled
            }
            try controller.raiseAndQuiesce(irq, times: 101_000)
            try controller.raiseAndQuiesce(irq)  // one more: delivered only if the line is still enabled
        }
        let stats = try controller.stats(irq)
        #expect(stats.disabledAsSpurious)
        #expect(stats.handled == 101_000)
        #expect(stats.unhandled == 99_901)
    }

    /// Each new request on the line restarts the window: 50,000 unhandled, a second shared
    /// request, then 60,000 unhandled never make 100,000 in one window.
    @Test func aNewRequestRestartsTheWindow() throws {
        let controller = try IRQController(mode: .polling, unhandledResetInterval: .seconds(30))
        let irq = try controller.addSoftwareLine()
        let a = Cookie("a"), b = Cookie("b")
        try onThread(timeout: .seconds(280)) {
            try controller.requestIRQ(irq, flags: .shared, name: "a", devID: a) { _ in .none }
            try controller.raiseAndQuiesce(irq, times: 50_000)
            try controller.requestIRQ(irq, flags: .shared, name: "b", devID: b) { _ in .none }
            try controller.raiseAndQuiesce(irq, times: 60_000)
        }
        let stats = try controller.stats(irq)
        #expect(!stats.disabledAsSpurious)
        #expect(stats.handled == 110_000)
        #expect(stats.unhandled == 110_000)
    }

    /// Unhandled interrupts further apart than the reset interval restart the count.
    @Test func slowUnhandledInterruptsRestartTheCount() throws {
        let controller = try IRQController(unhandledResetInterval: .microseconds(500))
        let irq = try controller.addSoftwareLine()
        try onThread(timeout: .seconds(280)) {
            try controller.requestIRQ(irq, name: "sometimes") { _ in .none }
            for i in 0..<100_100 {
                try controller.raise(irq)
                try controller.quiesce()
                if i % 50_000 == 0 { usleep(2_000) }  // two slow gaps restart the count
            }
        }
        #expect(try !controller.stats(irq).disabledAsSpurious)
    }

    /// A threaded line whose primaries only wake threads is judged by whether a thread
    /// returned HANDLED since the previous interrupt: a threaded NONE counts one interrupt
    /// late, and the first such interrupt is not counted.
    @Test func threadedNoneCountsOneInterruptLate() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let threadResult = Box<IRQReturn>(.none)
        let unhandled = try onThread { () -> [UInt64] in
            try controller.requestThreadedIRQ(
                irq, flags: .oneShot, name: "threaded", handler: nil, thread: { _ in threadResult.get() })
            var unhandled: [UInt64] = []
            try controller.raise(irq); try controller.quiesce()   // 1st: not counted (deferred)
            unhandled.append(try controller.stats(irq).unhandled)
            try controller.raise(irq); try controller.quiesce()   // 2nd: judges the 1st: NONE
            unhandled.append(try controller.stats(irq).unhandled)
            threadResult.set(.handled)
            try controller.raise(irq); try controller.quiesce()   // 3rd: judges the 2nd: NONE
            unhandled.append(try controller.stats(irq).unhandled)
            try controller.raise(irq); try controller.quiesce()   // 4th: judges the 3rd: HANDLED
            unhandled.append(try controller.stats(irq).unhandled)
            return unhandled
        }
        #expect(unhandled == [0, 1, 2, 2])
    }

    /// A new request resets the interrupt and unhandled counts only (`__setup_irq`), not
    /// the threaded deferral: the interrupt after a second shared request judges the one
    /// before it.
    @Test func aNewRequestKeepsTheThreadedDeferral() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let a = Cookie("a"), b = Cookie("b")
        let unhandled = try onThread { () -> [UInt64] in
            try controller.requestThreadedIRQ(
                irq, flags: [.shared, .oneShot], name: "a", devID: a, handler: nil, thread: { _ in .none })
            try controller.raise(irq); try controller.quiesce()   // deferred: not counted
            let first = try controller.stats(irq).unhandled
            try controller.requestThreadedIRQ(
                irq, flags: [.shared, .oneShot], name: "b", devID: b, handler: nil, thread: { _ in .none })
            try controller.raise(irq); try controller.quiesce()   // judges the 1st: NONE
            return [first, try controller.stats(irq).unhandled]
        }
        #expect(unhandled == [0, 1])
    }
}
