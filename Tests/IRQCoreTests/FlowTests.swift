import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// The flow semantics: shared lines, ONESHOT, depth and replay, threads.
@Suite(.timeLimit(.minutes(2)))
struct FlowTests {
    @Test func sharedLineRunsEveryActionInOrderAndCountsHandledIfAny() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let order = Box<[String]>([])
        let claim = Box<[String: IRQReturn]>(["a": .none, "b": .none])
        let a = Cookie(), b = Cookie()
        try onThread {
            for (name, cookie) in [("a", a), ("b", b)] {
                try controller.requestIRQ(irq, flags: .shared, name: name, devID: cookie) { _ in
                    order.update { $0.append(name) }
                    return ThreadedIRQReturn(claim.get()[name]!)
                }
            }
            try controller.raise(irq); try controller.quiesce()        // neither: unhandled
            claim.set(["a": .none, "b": .handled])
            try controller.raise(irq); try controller.quiesce()        // b: handled
            claim.set(["a": .handled, "b": .none])
            try controller.raise(irq); try controller.quiesce()        // a: handled
        }
        #expect(order.get() == ["a", "b", "a", "b", "a", "b"])
        let stats = try controller.stats(irq)
        #expect(stats.handled == 3)
        #expect(stats.unhandled == 1)
    }

    @Test func disableDepthAndOnePendingReplay() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let efd = try controller.addEventFDLine()
        let hits = [Hits(), Hits()]
        // Per line: depth after two disables, pending after the first enable, depth after both.
        let seen = try onThread { () -> [(Int, Bool, Int)] in
            try controller.requestIRQ(irq, name: "soft") { _ in hits[0].hit(); return .handled }
            try controller.requestIRQ(efd, name: "efd") { _ in hits[1].hit(); return .handled }
            return try [irq, efd].map { line in
                try controller.disableIRQ(line)
                try controller.disableIRQ(line)
                let depth = try controller.depth(of: line)
                try controller.raiseAndQuiesce(line, times: 5)
                try controller.enableIRQ(line)      // 2 → 1: still disabled
                try controller.quiesce()
                let pending = try controller.stats(line).pending
                try controller.enableIRQ(line)      // 1 → 0: one replay
                try controller.quiesce()
                return (depth, pending, try controller.depth(of: line))
            }
        }
        #expect(seen.map(\.0) == [2, 2])
        #expect(seen.map(\.1) == [true, true], "the raises while disabled left one pending")
        #expect(seen.map(\.2) == [0, 0])
        #expect(hits[0].value == 1)
        #expect(hits[1].value == 1)
        #expect(try controller.stats(efd).raised == 5, "every write counted, one interrupt handled")
    }

    @Test func unbalancedEnableWarnsAndKeepsDepthZero() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let never = try controller.addSoftwareLine()
        let errors = try onThread { () -> [IRQError?] in
            try controller.requestIRQ(irq, name: "x") { _ in .handled }
            return [
                caught(IRQError.self) { try controller.enableIRQ(irq) },
                caught(IRQError.self) { try controller.enableIRQ(never) },
            ]
        }
        #expect(errors[0] == .unbalancedEnable(irq: irq))
        #expect(errors[1] == .notSetUp(irq: never))
        #expect(try controller.depth(of: irq) == 0)
        let headlines = controller.log.reports.map(\.headline)
        #expect(headlines.contains("WARNING: Unbalanced enable for IRQ \(irq)"))
        #expect(headlines.contains("WARNING: enable_irq before setup/request_irq: irq \(never)"))
        // The line still works.
        let hits = Hits()
        try onThread {
            _ = try controller.freeIRQ(irq)
            try controller.requestIRQ(irq, name: "y") { _ in hits.hit(); return .handled }
            try controller.raise(irq)
            try controller.quiesce()
        }
        #expect(hits.value == 1)
    }

    @Test func disableNoSyncFromAHandlerIsAllowed() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let hits = Hits()
        try onThread {
            try controller.requestIRQ(irq, name: "self-disabling") { irq in
                hits.hit()
                try? controller.disableIRQNoSync(irq)
                return .handled
            }
            try controller.raise(irq); try controller.quiesce()
            try controller.raise(irq); try controller.quiesce()
        }
        #expect(hits.value == 1)
        #expect(try controller.depth(of: irq) == 1)
        #expect(controller.log.reports.isEmpty)
    }

    /// disable_irq waits for a handler running on the line's CPU: it returns only after
    /// the primary (spinning 100 ms) has ended.
    @Test func disableIRQWaitsForARunningHandler() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let started = Atomic<Bool>(false), ended = Atomic<Bool>(false)
        let endedAtReturn = try onThread { () -> Bool in
            try controller.requestIRQ(irq, name: "slow") { _ in
                started.store(true, ordering: .releasing)
                let until = monotonicNanoseconds() + 100_000_000
                _ = spin(upTo: 1) { monotonicNanoseconds() >= until }
                ended.store(true, ordering: .releasing)
                return .handled
            }
            try controller.raise(irq)
            guard spin(upTo: 10, until: { started.load(ordering: .acquiring) }) else { throw TimedOut() }
            try controller.disableIRQ(irq)
            return ended.load(ordering: .acquiring)
        }
        #expect(endedAtReturn, "disable_irq returned while the handler still ran")
        #expect(try controller.depth(of: irq) == 1)
    }

    /// ONESHOT on a level line: the line stays masked while the thread runs; the still-
    /// asserted line fires again only after the thread finishes.
    @Test func oneShotLevelLineStaysMaskedUntilTheThreadFinishes() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine(trigger: .triggerHigh)
        let primaries = Hits(), gate = FirstRunGate()
        let (whileRunning, maskedWhileRunning) = try onThread { () -> (Int, Bool) in
            defer { gate.release() }  // never leave the thread blocked
            try controller.requestThreadedIRQ(
                irq, flags: .oneShot, name: "level-oneshot", handler: { _ in primaries.hit(); return .wakeThread }, thread: { irq in
                    gate.pass()
                    try? controller.deassertLine(irq)  // the device side: the work is done
                    return .handled
                })
            try controller.assertLine(irq)
            try gate.waitUntilHeld()
            // Masked while the thread runs: nothing more, even with the line asserted (the CPU
            // has taken the raise once the primaries are quiescent).
            try controller.assertLine(irq)
            try controller.quiesce(includingThreads: false)
            let seen = (primaries.value, try controller.stats(irq).masked)
            gate.release()
            try controller.quiesce()
            return seen
        }
        #expect(whileRunning == 1)
        #expect(maskedWhileRunning)
        #expect(primaries.value == 1, "the thread deasserted before unmask, so no re-fire")
        #expect(gate.runs.value == 1)
        #expect(try !controller.stats(irq).masked)
    }

    /// The edge flow does not mask for ONESHOT: while the thread is blocked, a new edge
    /// runs the primary again (its wake coalesces with the running thread).
    @Test func oneShotEdgeLineIsNotMaskedWhileTheThreadRuns() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let primaries = Hits(), gate = FirstRunGate()
        defer { gate.release() }
        let (again, masked) = try onThread { () -> (Bool, Bool) in
            try controller.requestThreadedIRQ(
                irq, flags: .oneShot, name: "edge-oneshot", handler: { _ in primaries.hit(); return .wakeThread }, thread: { _ in
                    gate.pass()
                    return .handled
                })
            try controller.raise(irq)
            try gate.waitUntilHeld()
            let masked = try controller.stats(irq).masked
            try controller.raise(irq)
            let again = spin(upTo: 5) { primaries.value == 2 }
            gate.release()
            try controller.quiesce()
            return (again, masked)
        }
        #expect(!masked, "an edge line is not masked for its ONESHOT thread")
        #expect(again, "the edge raised while the thread ran reached the primary")
        #expect(primaries.value == 2)
        #expect(gate.runs.value == 2)
    }

    /// A level ONESHOT primary that returns HANDLED without waking its thread unmasks at
    /// once: the still-asserted line fires again until the primary deasserts it.
    @Test func oneShotLevelPrimaryHandledWithoutWakingUnmasksAtOnce() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine(trigger: .triggerHigh)
        let primaries = Hits(), runs = Hits()
        try onThread {
            try controller.requestThreadedIRQ(
                irq, flags: .oneShot, name: "quick", handler: { irq in
                    if primaries.hit() == 3 { try? controller.deassertLine(irq) }
                    return .handled
                }, thread: { _ in runs.hit(); return .handled })
            try controller.assertLine(irq)
            _ = spin(upTo: 5) { primaries.value >= 3 }
            try controller.quiesce()
        }
        #expect(primaries.value == 3, "fired again while asserted")
        #expect(runs.value == 0)
        #expect(try !controller.stats(irq).masked)
    }

    /// A shared level ONESHOT line stays masked until EVERY woken ONESHOT thread has
    /// finished, not just the first one.
    @Test func sharedOneShotLevelLineUnmasksOnlyAfterEveryThread() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine(trigger: .triggerHigh)
        let names = ["a", "b"]
        let cookies = [Cookie("a"), Cookie("b")]
        let entered = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
        let release = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
        let primaries = Hits()
        defer { release.forEach { $0.signal() } }
        let (afterFirst, afterSecond) = try onThread { () -> (Bool, Bool) in
            for i in 0..<2 {
                try controller.requestThreadedIRQ(
                    irq, flags: [.shared, .oneShot], name: names[i], devID: cookies[i], handler: { irq in
                        // The device is quiet once its primary ran: deassert.
                        try? controller.deassertLine(irq)
                        primaries.hit()
                        return .wakeThread
                    }, thread: { _ in
                        entered[i].signal()
                        _ = release[i].wait(timeout: .now() + 10)
                        return .handled
                    })
            }
            try controller.assertLine(irq)
            for semaphore in entered where semaphore.wait(timeout: .now() + 10) != .success { throw TimedOut() }
            release[0].signal()
            // The first thread's end must leave the line masked (give it time to unmask).
            let unmaskedEarly = spin(upTo: 0.2) { (try? controller.stats(irq).masked) == false }
            release[1].signal()
            try controller.quiesce()
            return (!unmaskedEarly, try !controller.stats(irq).masked)
        }
        #expect(afterFirst, "still masked while the second thread runs")
        #expect(afterSecond, "unmasked once both threads finished")
        #expect(primaries.value == 2, "one interrupt, two actions")
    }

    /// enable_irq at 1→0 unmasks even while a ONESHOT thread is pending (`__enable_irq` →
    /// `irq_enable` → `unmask_irq`): the still-asserted level line fires again, and the
    /// level flow masks it again because the thread is still pending.
    @Test func enableIRQUnmasksAOneShotLevelLineWhileItsThreadIsPending() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine(trigger: .triggerHigh)
        let primaries = Hits(), runs = Hits()
        let duringSleep = Atomic<Int>(-1)
        let enableError = Box<IRQError?>(nil)
        try onThread(timeout: .seconds(30)) {
            try controller.requestThreadedIRQ(
                irq, flags: .oneShot, name: "reenabling", handler: { irq in
                    if primaries.hit() == 1 { try? controller.disableIRQNoSync(irq) }
                    return .wakeThread
                }, thread: { irq in
                    if runs.hit() == 1 {
                        let before = primaries.value
                        enableError.set(caught(IRQError.self) { try controller.enableIRQ(irq) })
                        usleep(200_000)
                        duringSleep.store(primaries.value - before, ordering: .relaxed)
                    }
                    try? controller.deassertLine(irq)
                    return .handled
                })
            try controller.assertLine(irq)
            _ = spin(upTo: 10) { duringSleep.load(ordering: .relaxed) >= 0 }
            try controller.quiesce()
        }
        #expect(enableError.get() == nil)
        #expect(duringSleep.load(ordering: .relaxed) >= 1, "enable_irq unmasked the still-asserted line")
        #expect(try controller.depth(of: irq) == 0)
        #expect(try !controller.stats(irq).masked, "unmasked once the last thread run finished")
    }

    @Test func stillAssertedLevelLineFiresAgainAfterUnmask() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine(trigger: .triggerHigh)
        let hits = Hits()
        try onThread {
            try controller.requestIRQ(irq, name: "level") { irq in
                // Deassert only on the third run: the first two leave it asserted.
                if hits.hit() == 3 { try? controller.deassertLine(irq) }
                return .handled
            }
            try controller.assertLine(irq)
            try controller.quiesce()
        }
        #expect(hits.value == 3)
    }

    /// Wakes while the thread runs coalesce into exactly one more run.
    @Test func threadWakesDuringARunCoalesceIntoOneMoreRun() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let primaries = Hits(), gate = FirstRunGate()
        let separate = try onThread { () -> [Bool] in
            defer { gate.release() }  // never leave the thread blocked
            try controller.requestThreadedIRQ(
                irq, name: "coalesce", handler: { _ in primaries.hit(); return .wakeThread }, thread: { _ in
                    gate.pass()
                    return .handled
                })
            try controller.raise(irq)
            try gate.waitUntilHeld()
            let separate = try (0..<5).map { i in
                try controller.raise(irq)
                // Each raise is its own interrupt (wait for its primary before the next);
                // its wake finds the thread running, so the wakes coalesce.
                return spin(upTo: 10) { primaries.value == i + 2 }
            }
            gate.release()
            try controller.quiesce()
            return separate
        }
        #expect(separate == Array(repeating: true, count: 5), "each raise ran its primary")
        #expect(primaries.value == 6)
        #expect(gate.runs.value == 2)
    }

    @Test func synchronizeIRQWaitsForThePrimaryAndEveryThread() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let a = Cookie(), b = Cookie()
        let threadDone = Atomic<Int>(0)
        let doneAtReturn = try onThread { () -> Int in
            // Staggered: a wait that ends with the first thread to finish is caught.
            for (name, cookie, sleep) in [("t1", a, UInt32(10_000)), ("t2", b, UInt32(300_000))] {
                try controller.requestThreadedIRQ(
                    irq, flags: [.shared], name: name, devID: cookie, handler: { _ in .wakeThread }, thread: { _ in
                        usleep(sleep)
                        threadDone.add(1, ordering: .releasing)
                        return .handled
                    })
            }
            try controller.raise(irq)
            _ = spin(upTo: 5) { (try? controller.stats(irq).handled) == 1 }
            try controller.synchronizeIRQ(irq)
            return threadDone.load(ordering: .acquiring)
        }
        #expect(doneAtReturn == 2, "synchronize_irq returned before the slower thread finished")
    }
}
