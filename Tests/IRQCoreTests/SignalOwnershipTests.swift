import Foundation
import IRQEmu
import SystemPackage
import TestSupport
import Testing

/// A signal belongs to one owner at a time (a `TerminationSignal` or a signal line): a
/// second claim fails with EBUSY naming the owner, and the owner keeps receiving it.
/// Serialized: signal dispositions and the owner table are process state. The tests use
/// real-time signals at the top of `SignalAllocator.range`, each its own, while signal
/// lines elsewhere (SourceTests) take the lowest free one, so suites never meet on a signal.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SignalOwnershipTests {
    /// The `k`-th signal from the top of the real-time range (reserved for this file;
    /// `BlockingCallCheckerTests` uses `top(10)`).
    static func top(_ k: Int32) -> Int32 { SignalAllocator.range.upperBound - k }

    /// Sends `signal` to the calling thread with it unblocked there, so the handler has run
    /// when this returns (test threads may inherit a mask that blocks every signal).
    static func sendToThisThread(_ signal: Int32) {
        var only = sigset_t(), previous = sigset_t()
        sigemptyset(&only)
        sigaddset(&only, signal)
        pthread_sigmask(SIG_UNBLOCK, &only, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let rc = pthread_kill(pthread_self(), signal)
        precondition(rc == 0, "pthread_kill: \(rc)")
    }

    /// A second `TerminationSignal` for a signal is refused with EBUSY naming the first
    /// ("taken by a TerminationSignal"), and the first still receives the signal. Old code:
    /// the second silently took the signal over, and the first's wait never returned.
    @Test func aSecondTerminationSignalIsRefusedAndTheFirstStillReceives() throws {
        let signal = Self.top(0)
        let name = SignalAllocator.signalName(signal)
        let (owner, error, arrivedBefore, received) = try onThread { () -> (String?, IRQError?, Bool, Int32) in
            let first = try TerminationSignal([signal])
            let owner = SignalAllocator.owner(of: signal)
            let error = caught(IRQError.self) { _ = try TerminationSignal([signal]) }
            let arrivedBefore = first.arrived
            Self.sendToThisThread(signal)
            return (owner, error, arrivedBefore, try first.wait(timeout: .seconds(5)))
        }
        #expect(owner == "a TerminationSignal")
        #expect(error == .busy(irq: nil, reason: "signal \(name) is taken by a TerminationSignal"))
        #expect(error?.errno == .resourceBusy)
        #expect(!arrivedBefore, "nothing had arrived before the signal was sent")
        #expect(received == signal, "the first owner received the signal")
        #expect(SignalAllocator.owner(of: signal) == nil, "released with its TerminationSignal")
    }

    /// A `TerminationSignal` for several signals, one of them taken, is refused and takes
    /// none of them (the ones it had claimed are given back). Old code: no owners at all.
    @Test func aRefusedTerminationSignalTakesNothing() throws {
        let (free, taken) = (Self.top(1), Self.top(2))
        let (error, ownerOfFree, ownerOfTaken, received) = try onThread { () -> (IRQError?, String?, String?, [Int32]) in
            let holder = try TerminationSignal([taken])
            let error = caught(IRQError.self) { _ = try TerminationSignal([free, taken]) }
            let owners = (SignalAllocator.owner(of: free), SignalAllocator.owner(of: taken))
            // The signal given back can be taken now, and the holder still has its own.
            let other = try TerminationSignal([free])
            Self.sendToThisThread(free)
            let a = try other.wait(timeout: .seconds(5))
            Self.sendToThisThread(taken)
            let b = try holder.wait(timeout: .seconds(5))
            return (error, owners.0, owners.1, [a, b])
        }
        #expect(error?.errno == .resourceBusy)
        #expect(ownerOfFree == nil, "the signal claimed before the refusal was given back")
        #expect(ownerOfTaken == "a TerminationSignal")
        #expect(received == [free, taken])
    }

    /// A `TerminationSignal` for a signal line's signal is refused with EBUSY naming the
    /// line ("irq N of controller X"), and the line still gets its interrupts. Old code: the
    /// TerminationSignal took the signal over, and the line never fired again.
    @Test func aTerminationSignalForALinesSignalIsRefusedAndTheLineKeepsIt() throws {
        let signal = Self.top(3)
        let controller = try IRQController(name: "sigowner")
        defer { controller.shutdown() }
        let irq = try controller.addSignalLine(signal: signal)
        #expect(try controller.signal(of: irq) == signal)
        #expect(SignalAllocator.owner(of: signal) == "irq \(irq) of controller sigowner")
        let hits = Hits()
        let error = try onThread { () -> IRQError? in
            try controller.requestIRQ(irq, name: "line") { _ in hits.hit(); return .handled }
            try controller.raiseAndQuiesce(irq, times: 3)
            let error = caught(IRQError.self) { _ = try TerminationSignal([signal]) }
            try controller.raiseAndQuiesce(irq, times: 5)
            // Sent by hand too, as another process would: the handler still writes the line's wire.
            Self.sendToThisThread(signal)
            try controller.quiesce()
            return error
        }
        #expect(error == .busy(irq: nil, reason: "signal \(SignalAllocator.signalName(signal)) is taken by irq \(irq) of controller sigowner"))
        #expect(hits.value == 9, "every interrupt after the refusal reached the line")
        #expect(try controller.stats(irq).raised == 9)
        #expect(SignalAllocator.owner(of: signal) == "irq \(irq) of controller sigowner")
    }

    /// A signal line for a `TerminationSignal`'s signal is refused with EBUSY naming the
    /// TerminationSignal, which still receives the signal. Old code: the line took the
    /// signal over silently.
    @Test func aSignalLineForATerminationSignalsSignalIsRefused() throws {
        let signal = Self.top(4)
        let controller = try IRQController(name: "sigline")
        defer { controller.shutdown() }
        let (error, received, lines) = try onThread { () -> (IRQError?, Int32, [IRQNumber]) in
            let termination = try TerminationSignal([signal])
            let error = caught(IRQError.self) { _ = try controller.addSignalLine(signal: signal) }
            Self.sendToThisThread(signal)
            return (error, try termination.wait(timeout: .seconds(5)), controller.lines)
        }
        #expect(error?.errno == .resourceBusy)
        if case .busy(_, let reason)? = error {
            #expect(reason == "signal \(SignalAllocator.signalName(signal)) is taken by a TerminationSignal")
        } else {
            Issue.record("expected busy, got \(String(describing: error))")
        }
        #expect(received == signal)
        #expect(lines.isEmpty, "no line was added")
    }

    /// Once its owner lets go, a signal can be taken again: by a new TerminationSignal after
    /// the old one is released, by a line after that one is released, and by a
    /// TerminationSignal after the line's controller is shut down. Each new owner receives
    /// it. Old code: passes (nothing was owned, so nothing was refused); it fails where a
    /// release leaves the owner in place (a TerminationSignal deinit or a line shutdown
    /// that does not give the signal back) or leaves the handler writing the old wire.
    @Test func aReleasedSignalCanBeTakenAgain() throws {
        let signal = Self.top(5)
        let steps = try onThread { () -> [String] in
            var steps: [String] = []
            do {
                let first = try TerminationSignal([signal])
                _ = first
            }
            steps.append("released: \(SignalAllocator.owner(of: signal) ?? "free")")
            do {
                let second = try TerminationSignal([signal])
                Self.sendToThisThread(signal)
                steps.append("second received \(try second.wait(timeout: .seconds(5)) == signal)")
            }
            steps.append("released: \(SignalAllocator.owner(of: signal) ?? "free")")
            let controller = try IRQController(name: "retake")
            let irq = try controller.addSignalLine(signal: signal)
            let hits = Hits()
            try controller.requestIRQ(irq, name: "retaken") { _ in hits.hit(); return .handled }
            Self.sendToThisThread(signal)
            try controller.quiesce()
            steps.append("line hits \(hits.value)")
            controller.shutdown()
            steps.append("shut down: \(SignalAllocator.owner(of: signal) ?? "free")")
            let third = try TerminationSignal([signal])
            Self.sendToThisThread(signal)
            steps.append("third received \(try third.wait(timeout: .seconds(5)) == signal)")
            return steps
        }
        #expect(steps == [
            "released: free", "second received true", "released: free", "line hits 1", "shut down: free",
            "third received true",
        ])
        #expect(SignalAllocator.owner(of: signal) == nil)
    }

    /// Creating and releasing 200 TerminationSignals (over 4 signals) leaves the process's
    /// descriptor count unchanged but for one wire per distinct signal, at most 4. Run in a
    /// child process (an exit test), where no other test opens or closes descriptors. Old
    /// code: every TerminationSignal leaked its eventfd (200 more descriptors).
    @Test func terminationSignalsLeakNoDescriptors() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            createAndRelease200TerminationSignals()
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("descriptors: grew by "), "the child reported its counts")
    }
}

/// Open descriptors of this process (`/proc/self/fd` entries).
func openDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Exit-test body: 200 TerminationSignals created and released, cycling over 4 real-time
/// signals, each receiving its signal. Exits 0 if the descriptor count grew by at most 4.
func createAndRelease200TerminationSignals() {
    let signals = (0..<4).map { SignalOwnershipTests.top(Int32($0)) }
    let thread = try! KThread(name: "fd-leak") {
        let before = openDescriptorCount()
        for i in 0..<200 {
            let signal = signals[i % signals.count]
            let termination = try! TerminationSignal([signal])
            if i % 50 == 0 {
                SignalOwnershipTests.sendToThisThread(signal)
                guard (try? termination.wait(timeout: .seconds(5))) == signal else {
                    FileHandle.standardError.write(Data("TerminationSignal \(i) did not receive its signal\n".utf8))
                    exit(2)
                }
            }
        }
        let after = openDescriptorCount()
        FileHandle.standardError.write(Data("descriptors: grew by \(after - before) (\(before) -> \(after))\n".utf8))
        exit(before >= 0 && after - before <= signals.count ? 0 : 1)
    }
    try! thread.join()
}
