import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// The controller's KernelLog appended to from hard-IRQ context (an IRQ handler on a
/// dispatcher CPU) is the same ring: newest lines and reports kept, drops counted,
/// every report counted by kind.
@Suite(.timeLimit(.minutes(1)))
struct HardIRQLogTests {
    /// A handler prints one line per interrupt into a controller log of capacity 8; after
    /// 100 interrupts, one at a time, the log holds the newest 8 lines in order and counts
    /// 92 dropped. Old code: the log kept all 100 lines (no ring, no drop count).
    @Test func linesPrintedFromAHardIRQHandlerAreKeptAsARing() throws {
        let log = KernelLog(name: "hardirq-lines", capacity: 8)
        let controller = try IRQController(name: "hardirq-lines", log: log)
        defer { controller.shutdown() }
        #expect(controller.log === log)
        let irq = try controller.addSoftwareLine()
        let hits = Hits()
        let inHardIRQ = Atomic<Int>(0)
        try onThread {
            try controller.requestIRQ(irq, name: "printer") { _ in
                let n = hits.hit()
                if AtomicContext.inHardIRQ { inHardIRQ.add(1, ordering: .relaxed) }
                log.printk("hardirq \(n)")
                return .handled
            }
            try controller.raiseAndQuiesce(irq, times: 100)
        }
        #expect(hits.value == 100)
        #expect(inHardIRQ.load(ordering: .relaxed) == 100, "every line was printed in hard-IRQ context")
        #expect(log.messages == (93...100).map { "hardirq \($0)" })
        #expect(log.droppedMessages == 92)
    }

    /// A handler makes a sleeping call (`RCU.synchronize()`) on every interrupt: 20
    /// `sleepInAtomic` reports into a log that keeps 4. The newest 4 are kept, 16 dropped,
    /// and all 20 counted. Old code: all 20 reports kept, no `droppedReports`, no counts.
    @Test func reportsMadeInAHardIRQHandlerAreCountedWhenDropped() throws {
        let log = KernelLog(name: "hardirq-reports", capacity: 1_000, reportCapacity: 4)
        let controller = try IRQController(name: "hardirq-reports", log: log)
        defer { controller.shutdown() }
        let irq = try controller.addSoftwareLine()
        let refused = Hits()
        try onThread {
            try controller.requestIRQ(irq, name: "sleeper") { _ in
                if (try? RCU.synchronize()) == nil { refused.hit() }
                return .handled
            }
            try controller.raiseAndQuiesce(irq, times: 20)
        }
        #expect(refused.value == 20, "every sleeping call in the handler was refused")
        #expect(log.reportCount == 20)
        #expect(log.reportCount(.sleepInAtomic) == 20)
        #expect(log.reports.count == 4)
        #expect(log.droppedReports == 16)
        #expect(log.reports.allSatisfy { $0.kind == .sleepInAtomic })
        #expect(log.reports.allSatisfy { $0.lines.contains { $0.hasPrefix("in_atomic(): 1, irqs_disabled(): 1,") } },
                "reported from hard-IRQ context")
        let bugLines = log.messages.filter { $0.hasPrefix("BUG: sleeping function called from invalid context") }
        #expect(bugLines.count == 20, "every report's lines were printed, within the line capacity")
        #expect(log.droppedMessages == 0)
    }
}
