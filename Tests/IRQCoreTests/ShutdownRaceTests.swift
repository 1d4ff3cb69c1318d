import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// `IRQController.shutdown()` racing a request on the same line (found in review: a request
/// checked for shutdown before taking the line's request mutex, and shutdown took its
/// snapshot of the actions without it, so an action published just after the snapshot, and
/// its thread, lived for the rest of the process).
@Suite(.timeLimit(.minutes(2)))
struct ShutdownRaceTests {
    /// Many rounds of a threaded request racing a shutdown, released together: either the
    /// request fails cleanly (`shutDown`), or it succeeded and the shutdown freed it. Either
    /// way, once both return, the action's handler data has been dropped exactly once and
    /// no thread of the controller is left.
    @Test func aRequestRacingAShutdownIsRefusedOrFreed() {
        let rounds = Scale.iterations(300, tsan: 40)
        let outcomes = Box<[String: Int]>([:])
        let leaks = Box<[Int]>([])
        for round in 0..<rounds {
            guard let controller = try? IRQController(name: "race\(round % 10)"),
                  let irq = try? controller.addSoftwareLine() else {
                Issue.record("setup failed")
                return
            }
            let counter = Counted.Counter()
            let result = Box<IRQError?>(nil)
            Threads.run(2, name: "race", timeout: .seconds(20)) { index in
                if index == 0 {
                    let data = Counted(round, counter: counter)
                    do {
                        try controller.requestThreadedIRQ(
                            irq, flags: .oneShot, name: "racer", handler: nil,
                            thread: { _ in _ = data.isAlive; return .handled })
                    } catch {
                        result.set(error as? IRQError)
                    }
                } else {
                    controller.shutdown()
                }
            }
            let outcome: String
            switch result.get() {
            case nil: outcome = "requested, then freed by shutdown"
            case .shutDown?: outcome = "refused: shut down"
            case let other?: outcome = "unexpected: \(other)"
            }
            outcomes.update { $0[outcome, default: 0] += 1 }
            if counter.droppedCount != 1 { leaks.update { $0.append(round) } }
        }
        #expect(outcomes.get().keys.allSatisfy { !$0.hasPrefix("unexpected") }, "\(outcomes.get())")
        #expect(leaks.get().isEmpty, "handler data still alive after the race in rounds \(leaks.get())")
        print("shutdown race, \(rounds) rounds: \(outcomes.get())")
    }
}
