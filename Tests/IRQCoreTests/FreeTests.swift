import Foundation
@testable import IRQCore
import IRQEmu
import SystemPackage
import Synchronization
import TestSupport
import Testing

/// free_irq: the action goes, the handler never runs again once it returns, a double
/// free warns and changes nothing, and waiting on yourself is refused.
@Suite(.timeLimit(.minutes(2)))
struct FreeTests {
    /// free_irq lets go of the handler data only after the line's request mutex is
    /// released: data whose deinit frees another action of the same shared line (it held
    /// that registration) frees it, instead of deadlocking on the mutex its free holds.
    @Test func handlerDataThatFreesAnotherActionOfTheLineDoesNotDeadlock() throws {
        final class Key: Sendable {}
        final class HoldsB: Sendable {
            let controller: IRQController
            let irq: IRQNumber
            let b: Key
            let freedB: Box<Int>
            init(_ controller: IRQController, _ irq: IRQNumber, _ b: Key, _ freedB: Box<Int>) {
                (self.controller, self.irq, self.b, self.freedB) = (controller, irq, b, freedB)
            }
            deinit {
                if (try? controller.freeIRQ(irq, devID: b)) == "b" { freedB.update { $0 += 1 } }
            }
        }
        let controller = try IRQController(cpus: 1)
        let irq = try controller.addSoftwareLine()
        let (a, b) = (Key(), Key())
        let freedB = Box(0)
        let freedA = try onThread(timeout: .seconds(10)) { () -> String in
            try controller.requestIRQ(irq, flags: .shared, name: "b", devID: b) { _ in .none }
            func requestA() throws {
                let holder = HoldsB(controller, irq, b, freedB)
                try controller.requestIRQ(irq, flags: .shared, name: "a", devID: a) { [holder] _ in
                    _ = holder
                    return .none
                }
            }
            try requestA()
            // From here the handler's closure holds the only reference to the holder.
            return try controller.freeIRQ(irq, devID: a)
        }
        #expect(freedA == "a")
        #expect(freedB.get() == 1, "b was freed when a's handler data went")
        #expect(try controller.stats(irq).actions.isEmpty)
    }

    /// Each handler run lasts ~50 µs and counts itself running; right after free_irq
    /// returns, none may be running, and none may start later (a "freed" flag it checks).
    /// Many rounds while another thread raises as fast as it can.
    @Test(arguments: [false, true])
    func noHandlerRunsAfterFreeIRQReturns(threaded: Bool) throws {
        let controller = try IRQController(cpus: 2)
        let irq = try controller.addEventFDLine()
        let rounds = Scale.iterations(200, tsan: 20)
        let running = Atomic<Int>(0)
        let lateRuns = Atomic<Int>(0)
        let totalRuns = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let storm = try! KThread(name: "storm") {
            while !stop.load(ordering: .relaxed) { try? controller.raise(irq) }
        }
        defer {
            stop.store(true, ordering: .relaxed)
            try! storm.join()
        }
        let (names, runningAtReturn) = try onThread(timeout: .seconds(120)) { () -> ([String], [Int]) in
            var names: [String] = []
            var runningAtReturn: [Int] = []
            for _ in 0..<rounds {
                let freed = Atomic<Bool>(false)
                let body: @Sendable () -> Void = {
                    running.add(1, ordering: .sequentiallyConsistent)
                    if freed.load(ordering: .acquiring) { lateRuns.add(1, ordering: .relaxed) }
                    totalRuns.add(1, ordering: .relaxed)
                    _ = spin(upTo: 0.00005) { false }
                    running.subtract(1, ordering: .sequentiallyConsistent)
                }
                if threaded {
                    try controller.requestThreadedIRQ(
                        irq, name: "victim", handler: { _ in body(); return .wakeThread }, thread: { _ in body(); return .handled })
                } else {
                    try controller.requestIRQ(irq, name: "victim") { _ in body(); return .handled }
                }
                usleep(200)
                names.append(try controller.freeIRQ(irq))
                runningAtReturn.append(running.load(ordering: .sequentiallyConsistent))
                freed.store(true, ordering: .releasing)
                // A run caught here would otherwise spill into the next round.
                _ = spin(upTo: 1) { running.load(ordering: .sequentiallyConsistent) == 0 }
            }
            return (names, runningAtReturn)
        }
        #expect(names == Array(repeating: "victim", count: rounds))
        #expect(runningAtReturn.allSatisfy { $0 == 0 }, "a handler was still running when free_irq returned")
        let (late, total) = (lateRuns.load(ordering: .relaxed), totalRuns.load(ordering: .relaxed))
        #expect(late == 0)
        #expect(total > 0)
    }

    /// free_irq waits for every thread of the line, not only the freed action's: freeing
    /// A returns after B's thread has finished. B's thread runs until it sees the free of A
    /// waiting for it, so the race is exercised every time, with no sleep.
    @Test func freeIRQWaitsForEveryThreadOfTheLine() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let descriptor = try controller.core.descriptor(irq)
        let a = Cookie("a"), b = Cookie("b")
        let bStarted = Atomic<Bool>(false), bDone = Atomic<Bool>(false), freeWaited = Atomic<Bool>(false)
        let (name, doneAtReturn) = try onThread { () -> (String, Bool) in
            try controller.requestThreadedIRQ(
                irq, flags: .shared, name: "a", devID: a, handler: { _ in .wakeThread }, thread: { _ in .handled })
            try controller.requestThreadedIRQ(
                irq, flags: .shared, name: "b", devID: b, handler: { _ in .wakeThread }, thread: { _ in
                    bStarted.store(true, ordering: .releasing)
                    let waited = spin(upTo: 10) { descriptor.lock.withLock { descriptor.freeWaitsForThreads > 0 } }
                    freeWaited.store(waited, ordering: .releasing)
                    bDone.store(true, ordering: .releasing)
                    return .handled
                })
            try controller.raise(irq)
            guard spin(upTo: 10, until: { bStarted.load(ordering: .acquiring) }) else { throw TimedOut() }
            let name = try controller.freeIRQ(irq, devID: a)
            return (name, bDone.load(ordering: .acquiring))
        }
        #expect(name == "a")
        let sawFreeWait = freeWaited.load(ordering: .acquiring)
        #expect(sawFreeWait, "the free was seen waiting for B's thread")
        #expect(doneAtReturn, "free_irq returned while another action's thread still ran")
        #expect(try controller.stats(irq).actions == ["b"])
    }

    /// free_irq holds the line's request mutex while it waits for the line's threads, as
    /// the kernel's does: a threaded handler of another action that requests on the same
    /// line meanwhile (it binds a device, say) would wait for the free that waits for it.
    /// The request is reported and refused (EDEADLK) instead, and the free completes.
    @Test func aThreadedHandlerRequestingOnItsLineWhileAFreeWaitsForItIsRefused() throws {
        let log = KernelLog(name: "rerequest")
        let (freed, refusal, actions) = try onThread(timeout: .seconds(10)) { () -> (String, IRQError?, [String]) in
            let controller = try IRQController(log: log)
            defer { controller.shutdown() }
            let irq = try controller.addSoftwareLine()
            let (a, b, c) = (Cookie("a"), Cookie("b"), Cookie("c"))
            let entered = Atomic<Bool>(false)
            let refusal = Box<IRQError?>(nil)
            let descriptor = try controller.core.descriptor(irq)
            try controller.requestIRQ(irq, flags: .shared, name: "a", devID: a) { _ in .none }
            try controller.requestThreadedIRQ(
                irq, flags: .shared, name: "b", devID: b, handler: { _ in .wakeThread }, thread: { [unowned controller] _ in
                    entered.store(true, ordering: .releasing)
                    // Wait for the state itself: the free of "a" waits for this thread.
                    guard spin(upTo: 10, until: { descriptor.lock.withLock { descriptor.freeWaitsForThreads > 0 } }) else {
                        return .handled
                    }
                    do {
                        try controller.requestIRQ(irq, flags: .shared, name: "c", devID: c) { _ in .none }
                    } catch {
                        refusal.set(error as? IRQError)
                    }
                    return .handled
                })
            try controller.raise(irq)
            guard spin(upTo: 5, until: { entered.load(ordering: .acquiring) }) else { throw TimedOut() }
            let freed = try controller.freeIRQ(irq, devID: a)
            return (freed, refusal.get(), try controller.stats(irq).actions)
        }
        #expect(freed == "a")
        let refusedAsDeadlock: Bool
        if case .wouldDeadlock? = refusal { refusedAsDeadlock = true } else { refusedAsDeadlock = false }
        #expect(refusedAsDeadlock, "the request was refused as wouldDeadlock")
        #expect(actions == ["b"])
        #expect(log.reports.map(\.headline).contains { $0.hasPrefix("WARNING: request_irq(") && $0.hasSuffix("while free_irq waits for that thread would deadlock") })
    }

    @Test func doubleFreeWarnsAndCorruptsNothing() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let a = Cookie(), b = Cookie()
        let hits = Hits()
        let errors = try onThread { () -> [IRQError?] in
            try controller.requestIRQ(irq, flags: .shared, name: "a", devID: a) { _ in .none }
            try controller.requestIRQ(irq, flags: .shared, name: "b", devID: b) { _ in hits.hit(); return .handled }
            _ = try controller.freeIRQ(irq, devID: a)
            let errors = [
                caught(IRQError.self) { _ = try controller.freeIRQ(irq, devID: a) },
                caught(IRQError.self) { _ = try controller.freeIRQ(irq, devID: Cookie()) },
            ]
            try controller.raise(irq)
            try controller.quiesce()
            return errors
        }
        #expect(errors == [.alreadyFree(irq: irq), .alreadyFree(irq: irq)])
        #expect(controller.log.reports.filter { $0.headline == "WARNING: Trying to free already-free IRQ \(irq)" }.count == 2)
        #expect(try controller.stats(irq).actions == ["b"])
        #expect(hits.value == 1, "the remaining action still runs")
    }

    /// free_irq, disable_irq and synchronize_irq on a line from that line's own threaded
    /// handler would wait for themselves: refused (EDEADLK), reported, no hang.
    @Test func selfWaitFromTheLinesOwnThreadIsRefused() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let other = try controller.addSoftwareLine()
        let results = Box<[IRQError?]>([])
        try onThread {
            try controller.requestIRQ(other, name: "other") { _ in .handled }
            try controller.requestThreadedIRQ(
                irq, flags: .oneShot, name: "selfish", handler: nil, thread: { irq in
                    results.set([
                        caught(IRQError.self) { _ = try controller.freeIRQ(irq) },
                        caught(IRQError.self) { try controller.disableIRQ(irq) },
                        caught(IRQError.self) { try controller.synchronizeIRQ(irq) },
                        // Another line is fine from here: process context.
                        caught(IRQError.self) { try controller.synchronizeIRQ(other) },
                    ])
                    return .handled
                })
            try controller.raise(irq)
            try controller.quiesce()
        }
        let r = results.get()
        #expect(r.count == 4)
        #expect(r[0...2].allSatisfy { $0?.errno == .deadlock })
        #expect(r[3] == nil)
        #expect(try controller.depth(of: irq) == 0, "the refused disable_irq changed nothing")
        #expect(try controller.stats(irq).actions == ["selfish"])
        #expect(controller.log.reports.count == 3)
    }

    /// quiesce waits for every line's threads, its own included: from a line's own threaded
    /// handler it is refused at once (EDEADLK), as free_irq is; after `shutdown()` it throws
    /// `shutDown` at once.
    @Test func quiesceFromTheLinesOwnThreadOrAfterShutdownIsRefusedAtOnce() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let fromThread = Box<(IRQError?, UInt64)>((nil, 0))
        try onThread(timeout: .seconds(30)) {
            try controller.requestThreadedIRQ(
                irq, flags: .oneShot, name: "impatient", handler: nil, thread: { _ in
                    let start = monotonicNanoseconds()
                    let error = caught(IRQError.self) { try controller.quiesce(timeout: .seconds(5)) }
                    fromThread.set((error, monotonicNanoseconds() - start))
                    return .handled
                })
            try controller.raise(irq)
            try controller.quiesce(timeout: .seconds(20))
        }
        let (error, took) = fromThread.get()
        #expect(error?.errno == .deadlock)
        #expect(took < 2_000_000_000, "refused at once, not after the timeout")
        #expect(controller.log.reports.map(\.headline) == ["WARNING: quiesce(\(irq)) from the line's own threaded handler would wait for itself"])
        let afterShutdown = try onThread { () -> (IRQError?, UInt64) in
            controller.shutdown()
            let start = monotonicNanoseconds()
            let error = caught(IRQError.self) { try controller.quiesce(timeout: .seconds(5)) }
            return (error, monotonicNanoseconds() - start)
        }
        #expect(afterShutdown.0 == .shutDown)
        #expect(afterShutdown.1 < 2_000_000_000)
    }

    /// Alice's question: free_irq (threaded or not) and synchronize_rcu are not allowed in
    /// atomic context. From a hard-IRQ handler and from a read-side section they are
    /// reported with the BUG line and refused; the line keeps working.
    @Test func freeIRQAndSynchronizeRCUInAHandlerAreReportedAndRefused() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let results = Box<[String]>([])
        let hits = Hits()
        let fromReadSection = try onThread { () -> IRQError? in
            try controller.requestIRQ(irq, name: "atomic") { irq in
                if hits.hit() == 1 {
                    var r: [String] = []
                    r.append(caught(IRQError.self) { _ = try controller.freeIRQ(irq) }.map { "\($0.errno)" } ?? "ok")
                    r.append(caught(AtomicContextViolation.self) { try RCU.synchronize() } != nil ? "refused" : "ok")
                    r.append(caught(IRQError.self) { try controller.disableIRQ(irq) }.map { "\($0.errno)" } ?? "ok")
                    r.append(caught(IRQError.self) { try controller.synchronizeIRQ(irq) }.map { "\($0.errno)" } ?? "ok")
                    results.set(r)
                }
                return .handled
            }
            try controller.raise(irq)
            try controller.quiesce()
            // From a read-side section in process context too.
            let fromReadSection = RCU.read { caught(IRQError.self) { _ = try controller.freeIRQ(irq) } }
            try controller.raise(irq)
            try controller.quiesce()
            return fromReadSection
        }
        #expect(fromReadSection?.errno == .invalidArgument)
        #expect(results.get() == ["\(Errno.invalidArgument)", "refused", "\(Errno.invalidArgument)", "\(Errno.invalidArgument)"])
        #expect(hits.value == 2, "the line kept working")
        let reports = controller.log.reports(.sleepInAtomic)
        #expect(reports.count == 5, "four from the handler, one from the read-side section")
        let handlerFree = reports.first { $0.function == "free_irq" }
        #expect(handlerFree?.lines.first == "WARNING: Trying to free IRQ \(irq) from IRQ context!")
        #expect(handlerFree?.lines.contains { $0.hasPrefix("BUG: sleeping function called from invalid context at IRQCoreTests/FreeTests.swift:") } == true)
        #expect(handlerFree?.lines.contains { $0.hasPrefix("in_atomic(): 1, irqs_disabled(): 1,") } == true)
        #expect(handlerFree?.lines.contains("preempt_count: 10000, expected: 0") == true)
        let syncReport = reports.first { $0.function == "RCU.synchronize()" }
        #expect(syncReport?.lines.contains("Illegal synchronize_rcu() in RCU read-side critical section!") == true)
    }

    /// The kernel's `in_interrupt()` covers softirq too: free_irq from a `call_rcu`
    /// callback prints `Trying to free IRQ N from IRQ context!` before the BUG lines, and is
    /// refused.
    @Test func freeIRQFromAnRCUCallbackIsFromIRQContext() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let result = Box<IRQError?>(nil)
        try onThread {
            try controller.requestIRQ(irq, name: "softirq") { _ in .handled }
            RCU.callAfterGracePeriod {
                result.set(caught(IRQError.self) { _ = try controller.freeIRQ(irq) })
            }
            try RCU.barrier()
        }
        guard case .atomicContext(let violation)? = result.get() else {
            Issue.record("not refused as atomic context: \(String(describing: result.get()))")
            return
        }
        #expect(violation.function == "free_irq")
        #expect(violation.report.lines.first == "WARNING: Trying to free IRQ \(irq) from IRQ context!")
        #expect(violation.report.lines.contains("preempt_count: 100, expected: 0"))
        #expect(try controller.stats(irq).actions == ["softirq"])
    }

    /// A controller whose last reference goes inside its own handler cannot stop its CPUs
    /// there: a thread cannot join itself, and a hard-IRQ handler may not sleep. The drop is
    /// reported (the sleeping-call BUG in the handler, the self-wait warning on the IRQ
    /// thread), and the reaper frees the line and stops the threads.
    @Test(arguments: [false, true])
    func controllerDroppedInItsOwnHandlerShutsDownOnTheReaper(threaded: Bool) throws {
        let log = KernelLog(name: "selfdrop")
        let name = threaded ? "selfdrop-t" : "selfdrop-h"
        // The test keeps no strong reference: only `holder`, which the handler empties.
        let holder = Box<IRQController?>(try IRQController(name: name, log: log))
        weak let gone = holder.get()
        let irq = try #require(holder.get()).addEventFDLine()
        let fd = try #require(holder.get()).eventFD(of: irq)
        let hits = Hits()
        let drop: @Sendable () -> Void = {
            hits.hit()
            holder.set(nil)
        }
        try onThread {
            let controller = holder.get()!
            if threaded {
                try controller.requestThreadedIRQ(irq, flags: .oneShot, name: "dropper", handler: nil, thread: { _ in drop(); return .handled })
            } else {
                try controller.requestIRQ(irq, name: "dropper") { _ in drop(); return .handled }
            }
        }
        var one: UInt64 = 1
        #expect(write(fd, &one, 8) == 8)
        // The report comes before the reaper gets the work. (Polling `gone` instead would
        // take a strong reference each time, which could make the test thread the last.)
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while log.reports.isEmpty && monotonicNanoseconds() < deadline { usleep(1_000) }
        #expect(gone == nil, "the handler dropped the last reference")
        #expect(try onThread { (try? Reaper.shared.flush()) != nil })
        #expect(hits.value == 1)
        // The CPU and the IRQ thread have been joined; a joined thread leaves
        // /proc/self/task moments later.
        func threadNames() -> [String] {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            return tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
        }
        // (Only the threaded case has an IRQ thread; the two cases run in parallel.)
        func alive() -> Bool {
            threadNames().contains { $0.hasPrefix("\(name)/cpu") || (threaded && $0.hasPrefix("irq/\(irq)-dropper")) }
        }
        let exited = monotonicNanoseconds() + 5_000_000_000
        while alive() && monotonicNanoseconds() < exited { usleep(1_000) }
        #expect(!alive())
        let headlines = log.reports.map(\.headline)
        if threaded {
            #expect(headlines == [
                "WARNING: IRQController.deinit on controller \(name)'s own thread would wait for itself; deferred"
            ])
        } else {
            #expect(log.reports(.sleepInAtomic).map(\.function) == ["IRQController.deinit"])
            #expect(headlines.count == 1)
        }
    }
}

/// free_irq racing a request on the same line (found in review; both failed before the fix).
@Suite(.timeLimit(.minutes(2)))
struct FreeRacingRequestTests {
    /// The freed (last) action's primary is still running when free_irq unlinks it; a new
    /// request that is not ONESHOT must not be set up before that primary is done, or its
    /// wake-up of the freed action's thread leaves a ONESHOT bit that holds the level line
    /// masked for good.
    @Test func aFreedActionsLastPrimaryDoesNotLeaveTheLineMaskedForTheNextRequester() throws {
        let (first, second, masked) = try onThread(timeout: .seconds(20)) { () -> (Int, Int, Bool) in
            let controller = try IRQController()
            defer { controller.shutdown() }
            let irq = try controller.addSoftwareLine(trigger: .triggerHigh)
            let inA = Atomic<Bool>(false), releaseA = Atomic<Bool>(false)
            let b = Hits()
            try controller.requestThreadedIRQ(
                irq, flags: [.oneShot, .triggerHigh], name: "a", handler: { _ in
                    inA.store(true, ordering: .releasing)
                    _ = spin(upTo: 10, until: { releaseA.load(ordering: .acquiring) })
                    return .wakeThread
                }, thread: { _ in .handled })
            try controller.assertLine(irq)
            guard spin(upTo: 5, until: { inA.load(ordering: .acquiring) }) else { throw TimedOut() }
            let freer = try! KThread(name: "freer") { _ = try? controller.freeIRQ(irq) }
            defer { try! freer.join() }
            guard spin(upTo: 5, until: { (try? controller.stats(irq).actions) == [] }) else { throw TimedOut() }
            // Requested from another thread: it waits for a's primary (the free's request
            // mutex), which is released only after that request was made.
            let requester = try! KThread(name: "requester") {
                try? controller.requestIRQ(irq, flags: .triggerHigh, name: "b") { [controller] _ in
                    try? controller.deassertLine(irq)  // before counting: the test asserts again on seeing the count
                    b.hit()
                    return .handled
                }
            }
            let descriptor = try controller.core.descriptor(irq)
            guard spin(upTo: 10, until: { descriptor.requestMutexWaiters.load(ordering: .acquiring) > 0 }) else { throw TimedOut() }
            releaseA.store(true, ordering: .releasing)
            try! requester.join()
            _ = spin(upTo: 5) { b.value >= 1 }
            let first = b.value
            try controller.assertLine(irq)
            _ = spin(upTo: 5) { b.value > first }
            let second = b.value
            // b's flow unmasks after its handler returned: give it a moment, not for ever.
            let masked = !spin(upTo: 2) { (try? controller.stats(irq).masked) == false }
            try controller.deassertLine(irq)
            return (first, second, masked)
        }
        #expect(first >= 1, "b saw the line's pending level")
        #expect(second > first, "b saw the second assert")
        #expect(!masked)
    }

    /// A request that comes while free_irq waits for the freed action's thread waits for
    /// the free (the request mutex): the new action's thread, kept busy by a stream of
    /// interrupts, cannot hold the free off.
    @Test func aRequestDuringAFreeWaitsForItSoItsBusyThreadCannotHoldTheFreeOff() throws {
        let (during, actions) = try onThread(timeout: .seconds(30)) { () -> (Bool, [String]) in
            let controller = try IRQController()
            defer { controller.shutdown() }
            let irq = try controller.addSoftwareLine()
            let inA = Atomic<Bool>(false), releaseA = Atomic<Bool>(false)
            let freed = Atomic<Bool>(false), stop = Atomic<Bool>(false)
            try controller.requestThreadedIRQ(
                irq, name: "a", handler: { _ in .wakeThread }, thread: { _ in
                    inA.store(true, ordering: .releasing)
                    while !releaseA.load(ordering: .acquiring) { usleep(1_000) }
                    return .handled
                })
            try controller.raise(irq)
            guard spin(upTo: 5, until: { inA.load(ordering: .acquiring) }) else { throw TimedOut() }
            let freer = try! KThread(name: "freer") {
                _ = try? controller.freeIRQ(irq)
                freed.store(true, ordering: .releasing)
            }
            defer { try! freer.join() }
            guard spin(upTo: 5, until: { (try? controller.stats(irq).actions) == [] }) else { throw TimedOut() }
            let requester = try! KThread(name: "requester") {
                _ = try? controller.requestThreadedIRQ(
                    irq, name: "b", handler: { _ in .wakeThread }, thread: { _ in usleep(5_000); return .handled })
            }
            let raiser = try! KThread(name: "raiser") {
                while !stop.load(ordering: .acquiring) { try? controller.raise(irq); usleep(500) }
            }
            let descriptor = try controller.core.descriptor(irq)
            guard spin(upTo: 10, until: { descriptor.requestMutexWaiters.load(ordering: .acquiring) > 0 }) else { throw TimedOut() }
            releaseA.store(true, ordering: .releasing)
            let during = spin(upTo: 3, until: { freed.load(ordering: .acquiring) })
            stop.store(true, ordering: .releasing)
            try! raiser.join()
            try! requester.join()
            return (during, try controller.stats(irq).actions)
        }
        #expect(during, "free_irq returned while the new action's interrupts kept coming")
        #expect(actions == ["b"], "the request went through once the free was done")
    }
}
