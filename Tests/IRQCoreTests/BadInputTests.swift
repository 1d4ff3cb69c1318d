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
        #expect(errors.allSatisfy { $0?.errno == EINVAL }, "\(errors)")
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
        #expect([again, other, elsewhere].allSatisfy { $0?.errno == EBUSY })
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
        #expect(error?.errno == EINVAL)
        #expect(error?.description.contains("fd \(resample)") == true)
        #expect(controller.lines.isEmpty)
        #expect(fcntl(resample, F_GETFD) != -1)
    }

    @Test func timerPeriodsMustBeFiniteAndInRange() throws {
        let controller = try IRQController()
        let bad: [(Double, Double)] = [(.infinity, 0), (.nan, 0), (-1, 0), (1e30, 0), (1, .infinity), (1, .nan), (1, -0.5), (1, 1e30)]
        for (initial, interval) in bad {
            let error = caught(IRQError.self) { _ = try controller.addTimerLine(initial: initial, interval: interval) }
            #expect(error?.errno == EINVAL, "initial \(initial), interval \(interval)")
        }
        #expect(controller.lines.isEmpty, "a refused timer line is not added")
        let irq = try controller.addTimerLine()
        let error = caught(IRQError.self) { try controller.armTimer(irq, initial: .nan) }
        #expect(error == .invalidArgument(irq: irq, reason: "timer initial nan s is not a number of seconds from 0 to 1e9"))
    }

    @Test func badIntervalsAndTimeoutsThrow() throws {
        for interval in [Double.infinity, .nan, -1, 1e30] {
            #expect(caught(IRQError.self) { _ = try IRQController(unhandledResetInterval: interval) }?.errno == EINVAL)
        }
        let controller = try IRQController()
        #expect(try onThread { caught(IRQError.self) { try controller.quiesce(timeout: .nan) }?.errno } == EINVAL)
    }
}
