import Foundation
import IRQEmu
import Synchronization
import Testing
import TestSupport

/// Real sources: eventfd and real-time signals raised by other processes, timerfd lines.
/// Serialized: signal dispositions and the process's pending signals are shared state.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SourceTests {
    /// A child writes to the line's eventfd, passed to it on descriptor 3.
    @Test func childProcessRaisesAnEventFDLine() throws {
        let controller = try IRQController()
        let irq = try controller.addEventFDLine()
        let hits = Hits()
        try onThread {
            try controller.requestIRQ(irq, name: "from-child") { _ in hits.hit(); return .handled }
            let child = try ChildProcess.helper(["eventfd", "3", "200", "50"], fds: [(try controller.eventFD(of: irq), 3)])
            #expect(child.wait(timeout: 30) == 0)
            try controller.quiesce()
        }
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
        try onThread {
            try controller.requestIRQ(irq, name: "signalled") { _ in hits.hit(); return .handled }
            let child = try ChildProcess.helper(["signal", "\(getpid())", "\(signal)", "100", "200"])
            #expect(child.wait(timeout: 30) == 0)
            try controller.quiesce()
        }
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
        #expect(taken?.errno == EBUSY)
        #expect(caught(IRQError.self) { _ = try b.addSignalLine(signal: SIGUSR1) }?.errno == EINVAL)
        let other = try b.addSignalLine()
        #expect(try b.signal(of: other) != signal)
    }

    /// A signal for a line that was shut down is counted, never the default action (which
    /// would terminate the test process).
    @Test func lateSignalAfterShutdownIsCountedNotFatal() throws {
        var signal: Int32 = 0
        do {
            let controller = try IRQController()
            let irq = try controller.addSignalLine()
            signal = try controller.signal(of: irq)
            try onThread { try controller.requestIRQ(irq, name: "gone") { _ in .handled } }
        }
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
        let irq = try controller.addTimerLine(initial: 0.001, interval: 0.002)
        let hits = Hits()
        try onThread {
            try controller.requestIRQ(irq, name: "tick") { _ in hits.hit(); return .handled }
            try controller.quiesce(timeout: 2)  // returns although the timer keeps firing
            usleep(100_000)
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
                if hits.hit() == 3 { try? controller.deassertEventFD(irq) }
                return .handled
            }
            try controller.assertEventFD(irq)
            try controller.quiesce()
        }
        #expect(hits.value == 3)
        var count: UInt64 = 0
        #expect(read(resample, &count, 8) == 8)
        #expect(count >= 3, "one resample write per unmask")
    }
}
