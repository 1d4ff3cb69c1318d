import Foundation
import IRQEmu
import SystemPackage
import Synchronization
import TestSupport
import Testing

/// Real sources: eventfd and real-time signals raised by other processes, timerfd lines.
/// Serialized: signal dispositions and the process's pending signals are shared state.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SourceTests {
    /// A child writes to the line's eventfd, passed to it on descriptor 3.
    @Test func childProcessRaisesAnEventFDLine() throws {
        let controller = try IRQController()
        let irq = try controller.addEventFDLine()
        let hits = Hits()
        let status = try onThread { () -> Int32? in
            try controller.requestIRQ(irq, name: "from-child") { _ in hits.hit(); return .handled }
            let child = try ChildProcess.helper(["eventfd", "3", "200", "50"], fds: [(try controller.eventFD(of: irq), 3)])
            let status = try child.wait(timeout: .seconds(30))
            try controller.quiesce()
            return status
        }
        #expect(status == 0)
        let stats = try controller.stats(irq)
        #expect(stats.raised == 200, "every write of the child counted")
        #expect(stats.handled == UInt64(hits.value))
        #expect(hits.value >= 1 && hits.value <= 200)
    }

    /// A child sends the line's real-time signal to this process; the C handler forwards
    /// it to the dispatcher. Real-time signals queue, so every one is counted.
    @Test func childProcessSendsTheLinesSignal() throws {
        let controller = try IRQController()
        let irq = try controller.addSignalLine()
        let signal = try controller.signal(of: irq)
        #expect(SignalAllocator.range.contains(signal))
        let hits = Hits()
        let status = try onThread { () -> Int32? in
            try controller.requestIRQ(irq, name: "signalled") { _ in hits.hit(); return .handled }
            let child = try ChildProcess.helper(["signal", "\(getpid())", "\(signal)", "100", "200"])
            let status = try child.wait(timeout: .seconds(30))
            try controller.quiesce()
            return status
        }
        #expect(status == 0)
        let stats = try controller.stats(irq)
        #expect(stats.raised == 100)
        #expect(hits.value >= 1 && UInt64(hits.value) == stats.handled)
    }

    @Test func signalsAreAllocatedOncePerProcess() throws {
        let a = try IRQController(name: "a")
        let b = try IRQController(name: "b")
        let first = try a.addSignalLine()
        let signal = try a.signal(of: first)
        let taken = caught(IRQError.self) { _ = try b.addSignalLine(signal: signal) }
        #expect(taken?.errno == .resourceBusy)
        #expect(caught(IRQError.self) { _ = try b.addSignalLine(signal: SIGUSR1) }?.errno == .invalidArgument)
        let other = try b.addSignalLine()
        #expect(try b.signal(of: other) != signal)
    }

    /// A signal for a line that was shut down is counted, never the default action (which
    /// would terminate the test process).
    @Test func lateSignalAfterShutdownIsCountedNotFatal() throws {
        var signal: Int32 = 0
        weak var gone: IRQController?
        do {
            let controller = try IRQController()
            gone = controller
            let irq = try controller.addSignalLine()
            signal = try controller.signal(of: irq)
            try onThread { try controller.requestIRQ(irq, name: "gone") { _ in .handled } }
        }
        // The helper thread may release its reference just after it was joined.
        let released = monotonicNanoseconds() + 5_000_000_000
        while gone != nil && monotonicNanoseconds() < released { usleep(1_000) }
        #expect(gone == nil)
        // Released in a task (this test's), the controller is shut down on the reaper.
        #expect(try onThread { (try? Reaper.shared.flush()) != nil })
        let before = SignalAllocator.strayCount(signal)
        kill(getpid(), signal)
        let deadline = monotonicNanoseconds() + 5_000_000_000
        while SignalAllocator.strayCount(signal) == before && monotonicNanoseconds() < deadline { usleep(1_000) }
        #expect(SignalAllocator.strayCount(signal) == before + 1)
    }

    @Test func raiseFromThisProcessWorksForEverySource() throws {
        let controller = try IRQController(cpus: 2)
        let lines = [
            try controller.addEventFDLine(), try controller.addSignalLine(),
            try controller.addTimerLine(), try controller.addSoftwareLine(),
        ]
        let hits = lines.map { _ in Hits() }
        try onThread {
            for (i, irq) in lines.enumerated() {
                try controller.requestIRQ(irq, name: "line\(i)") { _ in hits[i].hit(); return .handled }
            }
            for _ in 0..<20 {
                for irq in lines {
                    try controller.raise(irq)
                    try controller.quiesce()
                }
            }
        }
        #expect(hits.map(\.value) == [20, 20, 20, 20])
        #expect(try lines.map { try controller.stats($0).chip } == ["eventfd", "signal", "timerfd", "soft"])
    }

    @Test func periodicTimerFiresAndQuiesceDoesNotWaitForIt() throws {
        let controller = try IRQController()
        let irq = try controller.addTimerLine(initial: .milliseconds(1), interval: .milliseconds(2))
        let hits = Hits()
        try onThread {
            try controller.requestIRQ(irq, name: "tick") { _ in hits.hit(); return .handled }
            try controller.quiesce(timeout: .seconds(2))  // returns although the timer keeps firing
            let deadline = monotonicNanoseconds() + 10_000_000_000
            while hits.value < 10 && monotonicNanoseconds() < deadline { usleep(1_000) }
            try controller.disarmTimer(irq)
        }
        let stats = try controller.stats(irq)
        #expect(hits.value >= 10)
        #expect(stats.raised >= UInt64(hits.value), "expirations that passed together fold into one interrupt")
    }

    /// A level eventfd line with a resample eventfd (VFIO INTx): the library writes the
    /// resample fd after each unmask; the in-process device re-triggers while asserted.
    @Test func levelEventFDLineResamples() throws {
        let controller = try IRQController()
        let irq = try controller.addEventFDLine(trigger: .triggerHigh)
        let resample = try controller.resampleFD(of: irq)
        let hits = Hits()
        try onThread {
            try controller.requestIRQ(irq, name: "intx") { irq in
                if hits.hit() == 3 { try? controller.deassertLine(irq) }
                return .handled
            }
            try controller.assertLine(irq)
            try controller.quiesce()
        }
        #expect(hits.value == 3)
        var count: UInt64 = 0
        #expect(read(resample, &count, 8) == 8)
        #expect(count >= 3, "one resample write per unmask")
    }

    /// A raise of a periodic timer line is one extra expiration: the period goes on.
    @Test func raisingAPeriodicTimerKeepsItPeriodic() throws {
        let controller = try IRQController()
        let irq = try controller.addTimerLine(initial: .milliseconds(1), interval: .milliseconds(2))
        let hits = Hits()
        let ticking = try onThread { () -> Bool in
            try controller.requestIRQ(irq, name: "tick") { _ in hits.hit(); return .handled }
            let deadline = monotonicNanoseconds() + 10_000_000_000
            while hits.value < 3 && monotonicNanoseconds() < deadline { usleep(1_000) }
            try controller.raise(irq)
            let afterRaise = hits.value
            while hits.value < afterRaise + 10 && monotonicNanoseconds() < deadline { usleep(1_000) }
            defer { try? controller.disarmTimer(irq) }
            return hits.value >= afterRaise + 10
        }
        #expect(ticking, "the timer kept its period after the raise")
    }

    /// The level trigger is for software lines and eventfd lines with a resample eventfd.
    /// Here because it allocates a real-time signal.
    @Test func levelTriggerNeedsALineThatCanBeLevel() throws {
        let controller = try IRQController()
        let edgeFD = try controller.addEventFDLine()
        let levelFD = try controller.addEventFDLine(trigger: .triggerHigh)
        let signal = try controller.addSignalLine()
        let timer = try controller.addTimerLine()
        let soft = try controller.addSoftwareLine()
        let results = try onThread { () -> [Errno?] in
            [edgeFD, signal, timer, levelFD, soft].map { irq in
                caught(IRQError.self) { try controller.requestIRQ(irq, flags: .triggerHigh, name: "lvl") { _ in .handled } }?.errno
            }
        }
        #expect(results == [.invalidArgument, .invalidArgument, .invalidArgument, nil, nil])
        #expect(caught(IRQError.self) { _ = try controller.addTimerLineLevel() }?.errno == .invalidArgument)
        #expect(try controller.stats(levelFD).isLevel)
        #expect(try controller.stats(soft).isLevel, "the first request set the line's trigger")
    }

    /// A raise that arrives for a freed line (a late or queued signal, a write, a software
    /// edge) is counted as spurious; the next requester never sees it.
    @Test(arguments: ["signal", "eventfd", "software"])
    func lateRaiseForAFreedLineIsSpurious(source: String) throws {
        let controller = try IRQController()
        let irq = try controller.addLine(of: source)
        let hits = Hits()
        let (spurious, before, after) = try onThread { () -> (UInt64, Int, Int) in
            try controller.requestIRQ(irq, name: "old") { _ in .handled }
            try controller.freeIRQ(irq)
            if source == "signal" {
                // Process-directed, as from another process: any thread may take it, later.
                kill(getpid(), try controller.signal(of: irq))
                let deadline = monotonicNanoseconds() + 5_000_000_000
                while try controller.stats(irq).spurious == 0 && monotonicNanoseconds() < deadline { usleep(1_000) }
            } else {
                try controller.raise(irq)
            }
            try controller.quiesce()
            let spurious = try controller.stats(irq).spurious
            try controller.requestIRQ(irq, name: "new") { _ in hits.hit(); return .handled }
            try controller.quiesce()
            let before = hits.value
            try controller.raise(irq)
            try controller.quiesce()
            return (spurious, before, hits.value)
        }
        #expect(spurious == 1)
        #expect(before == 0, "the new requester never saw the late raise")
        #expect(after == 1)
    }

    /// Raises held at a disabled line when it is freed do not reach the next requester.
    @Test(arguments: ["signal", "eventfd", "software"])
    func raisesPendingAtFreeDoNotReachTheNextRequester(source: String) throws {
        let controller = try IRQController()
        let irq = try controller.addLine(of: source)
        let hits = Hits()
        let (before, after) = try onThread { () -> (Int, Int) in
            try controller.requestIRQ(irq, name: "old") { _ in .handled }
            try controller.disableIRQ(irq)
            try controller.raiseAndQuiesce(irq, times: 2)  // the first masks the line, the second waits behind it
            try controller.freeIRQ(irq)
            try controller.quiesce()
            try controller.requestIRQ(irq, name: "new") { _ in hits.hit(); return .handled }
            try controller.quiesce()
            let before = hits.value
            try controller.raise(irq)
            try controller.quiesce()
            return (before, hits.value)
        }
        #expect(before == 0)
        #expect(after == 1)
    }

    /// A dropped controller closes its epoll instances, kick eventfds and line descriptors.
    /// Other suites open descriptors meanwhile, so a round may grow a little; a leak grows
    /// every round by about ten per controller.
    @Test func droppedControllersCloseTheirDescriptors() throws {
        func openDescriptors() -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        }
        func cycle() throws {
            try onThread {
                let controller = try IRQController(cpus: 2)
                let lines = [
                    try controller.addEventFDLine(), try controller.addEventFDLine(trigger: .triggerHigh),
                    try controller.addTimerLine(initial: .milliseconds(1), interval: .milliseconds(1)), try controller.addSignalLine(),
                    try controller.addSoftwareLine(),
                ]
                for irq in lines { try controller.requestIRQ(irq, name: "fd\(irq)") { _ in .handled } }
                try controller.raise(lines[0])
                try controller.quiesce()
            }
            // Replaced line lists go after a grace period.
            try onThread { try RCU.barrier() }
        }
        try cycle()  // first use: the signal's wire, the reaper, liburcu's threads
        var growth: [Int] = []
        for _ in 0..<3 {
            let before = openDescriptors()
            for _ in 0..<20 { try cycle() }
            growth.append(openDescriptors() - before)
            if growth.last! < 20 { break }
        }
        #expect(growth.min()! < 20, "descriptors leaked per round of 20 controllers: \(growth)")
    }
}

extension IRQController {
    /// A new line of the named source kind.
    func addLine(of source: String) throws -> IRQNumber {
        switch source {
        case "signal": try addSignalLine()
        case "eventfd": try addEventFDLine()
        case "timer": try addTimerLine()
        default: try addSoftwareLine()
        }
    }
}
