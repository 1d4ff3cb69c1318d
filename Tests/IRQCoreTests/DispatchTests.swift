import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(2)))
struct DispatchTests {
    @Test(arguments: DispatchMode.allCases)
    func softwareAndEventFDLinesDeliverToTheirHandlers(mode: DispatchMode) throws {
        let controller = try IRQController(cpus: 2, mode: mode)
        let soft = try controller.addSoftwareLine()
        let efd = try controller.addEventFDLine()
        let hits = [Hits(), Hits()]
        let context = Box<[String]>([])
        try onThread {
            try controller.requestIRQ(soft, name: "soft") { _ in
                hits[0].hit()
                context.update {
                    $0.append("hardirq=\(AtomicContext.inHardIRQ) rcu=\(RCU.isReadLocked) cpu=\(AtomicContext.cpu ?? -1)")
                }
                return .handled
            }
            try controller.requestIRQ(efd, name: "efd") { _ in hits[1].hit(); return .handled }
            for _ in 0..<50 {
                try controller.raise(soft)
                try controller.quiesce()
                try controller.raise(efd)
                try controller.quiesce()
            }
        }
        #expect(hits[0].value == 50)
        #expect(hits[1].value == 50)
        let seen = Set(context.get())
        #expect(seen.count == 1)
        #expect(seen.first?.hasPrefix("hardirq=true rcu=true cpu=") == true)
        let stats = try controller.stats(efd)
        #expect(stats.raised == 50)
        #expect(stats.handled == 50)
        #expect(stats.chip == "eventfd")
        // Lines go round-robin over the CPUs.
        let softStats = try controller.stats(soft)
        #expect(softStats.perCPU.filter { $0 > 0 }.count == 1)
        #expect(stats.perCPU.firstIndex { $0 > 0 } != softStats.perCPU.firstIndex { $0 > 0 })
    }

    /// Raises that arrive while the handler runs (eventfd writes, software edges) fold into
    /// one interrupt: exactly one more pass. `raised` counts each of them.
    @Test(arguments: ["eventfd", "software"])
    func raisesDuringTheHandlerGiveExactlyOneMorePass(source: String) throws {
        let controller = try IRQController()
        let irq = source == "eventfd" ? try controller.addEventFDLine() : try controller.addSoftwareLine()
        let inHandler = Atomic<Bool>(false)
        let release = Atomic<Bool>(false)
        let hits = Hits()
        let entered = try onThread { () -> Bool in
            try controller.requestIRQ(irq, name: "slow") { _ in
                if hits.hit() == 1 {
                    inHandler.store(true, ordering: .releasing)
                    _ = spin(upTo: 10) { release.load(ordering: .acquiring) }
                }
                return .handled
            }
            try controller.raise(irq)
            let entered = spin(upTo: 10) { inHandler.load(ordering: .acquiring) }
            for _ in 0..<10 { try controller.raise(irq) }
            release.store(true, ordering: .releasing)
            try controller.quiesce()
            return entered
        }
        #expect(entered, "the raises came while the handler ran")
        #expect(hits.value == 2, "a burst during the handler gives exactly one more pass")
        if source == "eventfd" { #expect(try controller.stats(irq).raised == 11) }
    }

    @Test func procInterruptsLooksLikeTheKernels() throws {
        let controller = try IRQController(cpus: 2)
        let a = try controller.addSoftwareLine()
        let b = try controller.addEventFDLine()
        let idle = try controller.addSoftwareLine()
        _ = idle
        let devA = Cookie(), devB = Cookie()
        try onThread {
            try controller.requestIRQ(a, flags: .shared, name: "eth0", devID: devA) { _ in .handled }
            try controller.requestIRQ(a, flags: .shared, name: "eth1", devID: devB) { _ in .none }
            try controller.requestIRQ(b, name: "disk") { _ in .handled }
            try controller.raiseAndQuiesce(a, times: 3)
        }
        let text = controller.procInterrupts
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "           CPU0       CPU1       ")
        #expect(lines[1] == "  1:          3          0      soft   1 Edge    -edge      eth0, eth1")
        #expect(lines[2].hasPrefix("  2:          0          0   eventfd "))
        #expect(lines[2].hasSuffix(" Edge    -edge      disk"))
        #expect(lines.count == 4, "the line without an action is not listed")
    }
}
