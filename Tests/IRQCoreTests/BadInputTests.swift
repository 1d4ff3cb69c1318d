import CSupport
import Foundation
import IRQEmu
import TestSupport
import Testing

/// Bad input is a thrown error that names the irq or the descriptor, never a trap, and
/// changes nothing.
@Suite(.timeLimit(.minutes(1)))
struct BadInputTests {
    @Test func adoptingADescriptorThatIsNotAnOpenEventFDThrows() throws {
        let controller = try IRQController()
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        defer { pipeFDs.forEach { close($0) } }
        let errors = [-1, 999_999, pipeFDs[0]].map { fd in
            caught(IRQError.self) { _ = try controller.addEventFDLine(adopting: fd) }
        }
        #expect(errors.allSatisfy { $0?.errno == .invalidArgument }, "\(errors)")
        #expect(errors[0]?.description.contains("fd -1") == true)
        #expect(errors[2]?.description.contains("fd \(pipeFDs[0]) is not an eventfd") == true)
        #expect(controller.lines.isEmpty)
        #expect(fcntl(pipeFDs[0], F_GETFD) != -1, "a refused descriptor is left open")
    }

    /// The same eventfd adopted twice (or a line's own eventfd adopted again) is refused,
    /// and the line that owns it keeps working.
    @Test func adoptingALinesEventFDAgainIsBusy() throws {
        let controller = try IRQController()
        let fd = eventfd(0, Int32(EFD_CLOEXEC))
        #expect(fd >= 0)
        let irq = try controller.addEventFDLine(adopting: fd)
        let own = try controller.addEventFDLine()
        let again = caught(IRQError.self) { _ = try controller.addEventFDLine(adopting: fd) }
        let other = caught(IRQError.self) { _ = try controller.addEventFDLine(adopting: try controller.eventFD(of: own)) }
        let elsewhere = caught(IRQError.self) { _ = try IRQController().addEventFDLine(adopting: fd) }
        #expect([again, other, elsewhere].allSatisfy { $0?.errno == .resourceBusy })
        #expect(again?.description.contains("fd \(fd)") == true)
        #expect(controller.lines == [irq, own])
        let hits = Hits()
        let written = try onThread { () -> Int in
            try controller.requestIRQ(irq, name: "adopted") { _ in hits.hit(); return .handled }
            var one: UInt64 = 1
            let written = write(fd, &one, 8)
            try controller.quiesce()
            return written
        }
        #expect(written == 8, "the refusals left the descriptor open")
        #expect(hits.value == 1)
    }

    @Test func aResampleEventFDForAnEdgeLineThrows() throws {
        let controller = try IRQController()
        let resample = eventfd(0, Int32(EFD_CLOEXEC))
        defer { close(resample) }
        let error = caught(IRQError.self) { _ = try controller.addEventFDLine(resample: resample) }
        #expect(error?.errno == .invalidArgument)
        #expect(error?.description.contains("fd \(resample)") == true)
        #expect(controller.lines.isEmpty)
        #expect(fcntl(resample, F_GETFD) != -1)
    }

    @Test func timerTimesMustNotBeNegative() throws {
        let controller = try IRQController()
        let bad: [(Duration, Duration)] = [(.seconds(-1), .zero), (.seconds(1), .milliseconds(-500)), (.nanoseconds(-1), .seconds(-1))]
        for (initial, interval) in bad {
            let error = caught(IRQError.self) { _ = try controller.addTimerLine(initial: initial, interval: interval) }
            #expect(error?.errno == .invalidArgument, "initial \(initial), interval \(interval)")
        }
        #expect(controller.lines.isEmpty, "a refused timer line is not added")
        let irq = try controller.addTimerLine()
        let error = caught(IRQError.self) { try controller.armTimer(irq, initial: .seconds(-2)) }
        #expect(error == .invalidArgument(irq: irq, reason: "timer initial -2.0 seconds is negative"))
        // Far-future times are clamped, not refused: the timer just never fires in practice.
        try controller.armTimer(irq, initial: .seconds(Int64.max / 2))
        #expect(try controller.stats(irq).raised == 0)
    }

    @Test func negativeIntervalsThrowAndTimeoutsFollowOnePolicy() throws {
        #expect(caught(IRQError.self) { _ = try IRQController(unhandledResetInterval: .milliseconds(-1)) }?.errno == .invalidArgument)
        let controller = try IRQController()
        // A zero or negative timeout checks once; an idle controller is quiescent at once.
        try onThread { try controller.quiesce(timeout: .zero) }
        try onThread { try controller.quiesce(timeout: .seconds(-1)) }
        // A timeout that passes throws the error named for it, never returns false or nil.
        let completion = Completion()
        let error = try onThread { caught(WaitError.self) { try completion.wait(timeout: .milliseconds(20)) } }
        #expect(error == .timedOut(operation: "Completion.wait", after: .milliseconds(20)))
        #expect(error?.errno == .timedOut)
    }
}
