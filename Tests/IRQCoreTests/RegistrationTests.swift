import Foundation
@testable import IRQCore
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// A handler whose data is marked dead when it is released: any run after that is counted.
final class CountingHandler: Handler, ThreadedHandler {
    let primaries = Atomic<Int>(0)
    let threads = Atomic<Int>(0)
    let afterDeath: Atomic<Int>
    let dead = Atomic<Bool>(false)
    let counter: Counted.Counter
    let wake: Bool

    init(counter: Counted.Counter, wake: Bool = false) {
        self.counter = counter
        self.afterDeath = Atomic(0)
        self.wake = wake
        counter.created.add(1, ordering: .relaxed)
    }

    deinit {
        dead.store(true, ordering: .releasing)
        counter.dropped.add(1, ordering: .relaxed)
    }

    func check() {
        if dead.load(ordering: .acquiring) { afterDeath.add(1, ordering: .relaxed) }
    }

    func handle(device: borrowing Device.Bound) -> IRQReturn {
        check()
        primaries.add(1, ordering: .relaxed)
        return .handled
    }

    func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn {
        check()
        primaries.add(1, ordering: .relaxed)
        return wake ? .wakeThread : .handled
    }

    func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
        check()
        threads.add(1, ordering: .relaxed)
        return .handled
    }
}

@Suite(.timeLimit(.minutes(3)))
struct RegistrationTests {
    /// Unbind frees the IRQ before it returns, although the registration is still
    /// referenced; the handler stays reachable and no longer runs.
    @Test(arguments: RevocationStrategy.allCases)
    func unbindFreesTheIRQWhileTheRegistrationLivesOn(strategy: RevocationStrategy) throws {
        let controller = try IRQController()
        let irq = try controller.addEventFDLine()
        let counter = Counted.Counter()
        let device = Device(name: "dev")
        let holder = Box<Registration<CountingHandler>?>(nil)
        let (report, actionsAtUnbind) = try onThread { () -> (UnbindReport, [String]) in
            try device.bind(ClosureDriver(probe: { bound in
                holder.set(try Registration(
                    bound, controller: controller, irq: irq, name: "dev-irq", strategy: strategy, handler: CountingHandler(counter: counter)))
            }))
            try controller.raise(irq)
            try controller.quiesce()
            let report = try device.unbind()
            let actions = try controller.stats(irq).actions
            try controller.raise(irq)
            try controller.quiesce()
            return (report, actions)
        }
        #expect(report.gracePeriods == (strategy == .rcu ? 1 : 0))
        #expect(actionsAtUnbind.isEmpty, "free_irq ran before unbind returned")
        do {
            let registration = try #require(holder.get())
            #expect(registration.handler.primaries.load(ordering: .relaxed) == 1)
            #expect(try controller.stats(irq).handled == 1, "the freed line is shut down: masked")
            #expect(caught(IRQError.self) { try onThread { try registration.trySynchronize() } } == .noDevice(device: "dev"))
        }
        #expect(counter.droppedCount == 0, "the handler lives as long as the registration")
        holder.set(nil)
        #expect(counter.droppedCount == 1)
    }

    @Test(arguments: RevocationStrategy.allCases)
    func droppingTheRegistrationBeforeUnbindFreesAtOnce(strategy: RevocationStrategy) throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let counter = Counted.Counter()
        let device = Device(name: "dev")
        let holder = Box<ThreadedRegistration<CountingHandler>?>(nil)
        let (threads, actions, dropped, report) = try onThread { () -> (Int, [String], Int, UnbindReport) in
            try device.bind(ClosureDriver(probe: { bound in
                holder.set(try ThreadedRegistration(
                    bound, controller: controller, irq: irq, name: "threaded", strategy: strategy, handler: CountingHandler(counter: counter, wake: true)))
            }))
            try controller.raise(irq)
            try controller.quiesce()
            let threads = holder.get()!.handler.threads.load(ordering: .relaxed)
            holder.set(nil)
            let actions = try controller.stats(irq).actions
            let dropped = counter.droppedCount
            return (threads, actions, dropped, try device.unbind())
        }
        #expect(threads == 1)
        #expect(actions.isEmpty, "dropping the registration freed the IRQ")
        #expect(dropped == 1)
        #expect(report.released == 0)
    }

    @Test func trySynchronizeAndSynchronizeWithProof() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let counter = Counted.Counter()
        let device = Device(name: "mine"), other = Device(name: "other")
        let holder = Box<Registration<CountingHandler>?>(nil)
        let results: [IRQError?] = try onThread { () -> [IRQError?] in
            try device.bind(ClosureDriver(probe: { bound in
                holder.set(try Registration(bound, controller: controller, irq: irq, name: "r", handler: CountingHandler(counter: counter)))
            }))
            try other.bind(ClosureDriver(probe: { _ in }))
            let registration = holder.get()!
            return [
                caught(IRQError.self) { try registration.trySynchronize() },
                caught(IRQError.self) { try device.withBound { bound in try? registration.synchronize(bound) } },
                caught(IRQError.self) {
                    var error: IRQError?
                    try? other.withBound { bound in
                        error = caught(IRQError.self) { try registration.synchronize(bound) }
                    }
                    if let error { throw error }
                },
            ]
        }
        #expect(results[0] == nil)
        #expect(results[1] == nil)
        #expect(results[2] == IRQError.wrongDevice(expected: "mine", given: "other"))
        #expect(results[2]?.errno == .invalidArgument)
    }

    /// Upstream's `Registration::try_synchronize` (6.17/6.18) calls synchronize_irq while
    /// holding the Revocable's RCU guard. Written against this library (a Devres holding
    /// the IRQ, as upstream's `inner`), the checker flags it; the library's own
    /// `trySynchronize` does not do it.
    @Test func upstreamTrySynchronizePatternIsFlagged() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "upstream")
        let holder = Box<Registration<CountingHandler>?>(nil)
        let inner = Box<Devres<IRQNumber>?>(nil)
        let outcome = try onThread { () -> (IRQError?, IRQError?) in
            try device.bind(ClosureDriver(probe: { bound in
                holder.set(try Registration(bound, controller: controller, irq: irq, name: "u", handler: CountingHandler(counter: Counted.Counter())))
                inner.set(try Devres(bound, irq))
            }))
            let registration = holder.get()!
            // let inner = self.inner.try_access().ok_or(ENODEV)?; inner.synchronize();
            let upstream = inner.get()!.tryAccess { irq in
                caught(IRQError.self) { try controller.synchronizeIRQ(irq) }
            } ?? nil
            let ours = caught(IRQError.self) { try registration.trySynchronize() }
            return (upstream, ours)
        }
        guard case .atomicContext(let violation)? = outcome.0 else {
            Issue.record("the upstream pattern was not flagged: \(String(describing: outcome.0))")
            return
        }
        #expect(violation.function == "synchronize_irq")
        #expect(violation.report.lines.contains("RCU nest depth: 1, expected: 0"))
        #expect(outcome.1 == nil)
        #expect(controller.log.reports(.sleepInAtomic).count == 1)
    }

    /// Creating a registration requests the IRQ, which may sleep: inside a read-side
    /// section or under a spinlock it is reported to the device's log and refused before
    /// anything is requested.
    @Test func registrationInAtomicContextIsReportedAndRefused() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "atomic-probe")
        let spinlock = SpinLock(0)
        let errors = Box<[IRQError?]>([])
        try onThread {
            try device.bind(ClosureDriver(probe: { bound in
                let register: (borrowing Device.Bound) -> IRQError? = { bound in
                    caught(IRQError.self) {
                        _ = try Registration(
                            bound, controller: controller, irq: irq, name: "atomic",
                            handler: CountingHandler(counter: Counted.Counter()))
                    }
                }
                errors.set([RCU.read { register(bound) }, spinlock.withLock { _ in register(bound) }])
            }))
            _ = try device.unbind()
        }
        let results = errors.get()
        #expect(results.count == 2)
        for error in results {
            guard case .atomicContext(let violation)? = error else {
                Issue.record("not refused as atomic context: \(String(describing: error))")
                continue
            }
            #expect(violation.function == "request_irq")
        }
        #expect(device.log.reports(.sleepInAtomic).map(\.function) == ["request_irq", "request_irq"])
        #expect(controller.log.reports.isEmpty, "refused by the registration, before request_irq")
        #expect(try controller.stats(irq).actions.isEmpty, "no action was added")
    }

    /// The last reference to a registration dropped inside its own handler: reported, no
    /// hang, and the handler never runs again.
    @Test func registrationDroppedInsideItsOwnHandler() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "suicidal")
        let counter = Counted.Counter()
        final class Dropper: Handler {
            let slot = Box<Registration<Dropper>?>(nil)
            let runs = Atomic<Int>(0)
            func handle(device: borrowing Device.Bound) -> IRQReturn {
                runs.add(1, ordering: .relaxed)
                slot.set(nil)  // the last reference: the registration is dropped here
                return .handled
            }
        }
        let dropper = Dropper()
        _ = counter
        let flushed = Box(false)
        try onThread {
            try device.bind(ClosureDriver(probe: { bound in
                dropper.slot.set(try Registration(bound, controller: controller, irq: irq, name: "dropper", handler: dropper))
            }))
            try controller.raise(irq)
            try controller.quiesce()
            flushed.set((try? Reaper.shared.flush(timeout: .seconds(10))) != nil)
            try controller.raiseAndQuiesce(irq, times: 3)
            _ = try device.unbind()
        }
        #expect(flushed.get(), "the deferred drop finished")
        #expect(dropper.runs.load(ordering: .relaxed) == 1, "the handler never ran again")
        #expect(try controller.stats(irq).actions.isEmpty)
        let report = controller.log.reports(.sleepInAtomic).first
        #expect(report?.function == "free_irq")
        #expect(report?.lines.first == "WARNING: Trying to free IRQ \(irq) from IRQ context!")
        #expect(device.log.reports.isEmpty && controller.log.reports.count == 1, "reported once")
    }

    /// The last reference to a threaded registration dropped on its own IRQ thread while
    /// another thread unbinds the device: the unbinder's free_irq waits for that thread,
    /// so the drop must not wait for the unbinder. Both finish; the handler data goes once.
    @Test(arguments: RevocationStrategy.allCases)
    func threadedRegistrationDroppedOnItsOwnThreadDuringUnbind(strategy: RevocationStrategy) throws {
        final class SelfDropper: ThreadedHandler {
            let slot = Box<ThreadedRegistration<SelfDropper>?>(nil)
            let controller: IRQController
            let irq: IRQNumber
            let inThread = Atomic<Bool>(false)
            let runs = Atomic<Int>(0)
            let sawUnbind = Atomic<Bool>(false)
            init(controller: IRQController, irq: IRQNumber) {
                self.controller = controller
                self.irq = irq
            }
            func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
                runs.add(1, ordering: .relaxed)
                inThread.store(true, ordering: .releasing)
                // Wait (bounded) until the unbinder's free_irq has unlinked the action, and
                // so waits for this thread, then drop the last reference.
                let deadline = monotonicNanoseconds() + 5_000_000_000
                while (try? controller.stats(irq).actions.isEmpty) != true && monotonicNanoseconds() < deadline {
                    usleep(100)
                }
                sawUnbind.store((try? controller.stats(irq).actions.isEmpty) == true, ordering: .relaxed)
                slot.set(nil)
                return .handled
            }
        }
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "self-dropping")
        let dropper = SelfDropper(controller: controller, irq: irq)
        let flushed = Box(false)
        try onThread(timeout: .seconds(20)) {
            try device.bind(ClosureDriver(probe: { bound in
                dropper.slot.set(try ThreadedRegistration(
                    bound, controller: controller, irq: irq, name: "self-dropping", strategy: strategy, handler: dropper))
            }))
            try controller.raise(irq)
            _ = spin(upTo: 5) { dropper.inThread.load(ordering: .acquiring) }
            _ = try device.unbind()
            flushed.set((try? Reaper.shared.flush(timeout: .seconds(10))) != nil)
            try controller.raise(irq)
            try controller.quiesce()
        }
        let (raced, runs) = (dropper.sawUnbind.load(ordering: .relaxed), dropper.runs.load(ordering: .relaxed))
        #expect(flushed.get(), "the deferred drop finished")
        #expect(raced, "the drop raced the unbind")
        #expect(runs == 1)
        #expect(dropper.slot.get() == nil)
        #expect(try controller.stats(irq).actions.isEmpty)
    }

    /// A threaded handler may unbind its device from inside `Devres.access` (it read a
    /// fatal state there): the unbind cannot wait for that access, which is further up its
    /// own stack. It reports that, and the reaper drops the value once the access has ended.
    @Test func unbindFromInsideADevresAccessOnAThreadedHandler() throws {
        final class Fatal: ThreadedHandler {
            let state = Box<Devres<Counted>?>(nil)
            let unbound = Box<Bool?>(nil)
            let droppedInAccess = Box<Bool?>(nil)
            let counter: Counted.Counter
            init(counter: Counted.Counter) { self.counter = counter }
            func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
                let owner = device.device
                _ = try? state.get()!.access(device) { _ in
                    unbound.set((try? owner.unbind()) != nil)
                    droppedInAccess.set(counter.droppedCount == 1)
                }
                return .handled
            }
        }
        let counter = Counted.Counter()
        let (unbound, droppedInAccess, flushed, headlines) = try onThread(timeout: .seconds(10)) { () -> (Bool?, Bool?, Bool, [String]) in
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let device = Device(name: "fatal")
            let handler = Fatal(counter: counter)
            let registration = Box<ThreadedRegistration<Fatal>?>(nil)
            try device.bind(ClosureDriver(probe: { bound in
                handler.state.set(try Devres(bound, Counted(1, counter: counter)))
                registration.set(try ThreadedRegistration(bound, controller: controller, irq: irq, name: "fatal", handler: handler))
            }))
            try controller.raise(irq)
            try controller.quiesce(timeout: .seconds(5))
            let flushed = (try? Reaper.shared.flush(timeout: .seconds(5))) != nil
            return (handler.unbound.get(), handler.droppedInAccess.get(), flushed, device.log.reports.map(\.headline))
        }
        #expect(unbound == true)
        #expect(droppedInAccess == false, "the value was not dropped under its own access")
        #expect(flushed && counter.droppedCount == 1, "the reaper dropped it once the access ended")
        #expect(headlines.contains("WARNING: Devres<Counted> of device fatal released inside its own access(_:) would wait for itself; deferred"), "\(headlines)")
    }

    /// A threaded handler that drops its own registration (its free_irq is deferred to the
    /// reaper, which stops this thread) and then requests its line again gets it: the
    /// deferred free does not wait for the thread while holding the line's request mutex,
    /// which that request takes.
    @Test func threadedHandlerRequestsItsLineAgainAfterDroppingItsRegistration() throws {
        final class Rerequester: ThreadedHandler {
            let slot = Box<ThreadedRegistration<Rerequester>?>(nil)
            let controller: IRQController
            let irq: IRQNumber
            let requested = Box<Bool?>(nil)
            let reaperWasStopping = Box(false)
            init(controller: IRQController, irq: IRQNumber) {
                self.controller = controller
                self.irq = irq
            }
            func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
                slot.set(nil)
                // Wait for the state itself: the reaper's deferred free_irq is stopping this
                // very thread (its stop flag is set) before the request is made.
                let stopping = spin(upTo: 10) { IRQThread.current?.stopFlag.load(ordering: .acquiring) == true }
                reaperWasStopping.set(stopping)
                requested.set((try? controller.requestIRQ(irq, name: "again") { _ in .handled }) != nil)
                return .handled
            }
        }
        let (requested, flushed, actions) = try onThread(timeout: .seconds(10)) { () -> (Bool?, Bool, [String]) in
            let controller = try IRQController()
            defer { controller.shutdown() }
            let irq = try controller.addSoftwareLine()
            let device = Device(name: "rerequester")
            let handler = Rerequester(controller: controller, irq: irq)
            try device.bind(ClosureDriver(probe: { bound in
                handler.slot.set(try ThreadedRegistration(bound, controller: controller, irq: irq, name: "first", handler: handler))
            }))
            try controller.raise(irq)
            guard spin(upTo: 5, until: { handler.requested.get() != nil }) else { throw TimedOut() }
            let flushed = (try? Reaper.shared.flush(timeout: .seconds(5))) != nil
            _ = try device.unbind()
            return (handler.requested.get(), flushed && handler.reaperWasStopping.get(), try controller.stats(irq).actions)
        }
        #expect(requested == true, "the request from the threaded handler succeeded")
        // (flushed also says the request was made while the reaper was stopping the thread.)
        #expect(flushed, "the deferred free finished")
        #expect(actions == ["again"])
    }

    /// A registration whose request fails (EBUSY here) frees nothing: no "already-free"
    /// warning. Neither does one released after the controller was shut down.
    @Test func failedOrShutDownRegistrationsWarnNothing() throws {
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "late")
        let holder = Box<Registration<CountingHandler>?>(nil)
        let error = try onThread { () -> IRQError? in
            try controller.requestIRQ(irq, name: "owner") { _ in .handled }
            let failed = Box<IRQError?>(nil)
            try device.bind(ClosureDriver(probe: { bound in
                failed.set(caught(IRQError.self) {
                    _ = try Registration(bound, controller: controller, irq: irq, name: "second", handler: CountingHandler(counter: Counted.Counter()))
                })
            }))
            try controller.freeIRQ(irq)
            try device.withBound { bound in
                holder.set(try Registration(bound, controller: controller, irq: irq, name: "third", handler: CountingHandler(counter: Counted.Counter())))
            }
            controller.shutdown()
            _ = try device.unbind()
            holder.set(nil)
            return failed.get()
        }
        #expect(error?.errno == .resourceBusy)
        let warnings = (controller.log.reports + device.log.reports).filter { $0.headline.contains("already-free") }
        #expect(warnings.isEmpty, "\(warnings.map(\.headline))")
    }

    /// The classic ordering bug: data registered after the IRQ is released before the IRQ
    /// is freed, while interrupts still arrive. Its access is caught, never a dangling read;
    /// data registered before the IRQ stays readable through `access(bound)` until after
    /// free_irq, with either strategy (access ignores the revoked flag, as upstream's
    /// `Devres::access(&Device<Bound>)`). In that window `tryAccess` of the older data
    /// returns nil for an RCU Devres under batched unbind (every flag flipped at once, before
    /// the first release), and still the value for an RCU Devres under per-object unbind
    /// and for a mutex Devres (each revoked at its own turn, newest first).
    @Test(arguments: UnbindMode.allCases, RevocationStrategy.allCases)
    func resourceRegisteredAfterTheIRQIsCaughtNotRead(mode: UnbindMode, strategy: RevocationStrategy) throws {
        final class Reader: Handler {
            let older = Box<Devres<Int>?>(nil)
            let newer = Box<Devres<Int>?>(nil)
            let olderFailures = Atomic<Int>(0)
            let newerFailures = Atomic<Int>(0)
            let runs = Atomic<Int>(0)
            func handle(device: borrowing Device.Bound) -> IRQReturn {
                if (try? older.get()!.access(device) { $0 }) == nil { olderFailures.add(1, ordering: .relaxed) }
                if (try? newer.get()!.access(device) { $0 }) == nil { newerFailures.add(1, ordering: .relaxed) }
                runs.add(1, ordering: .releasing)
                return .handled
            }
        }
        let controller = try IRQController()
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "buggy")
        let reader = Reader()
        let registration = Box<Registration<Reader>?>(nil)
        let tryAccessInWindow = Box<Int??>(nil)
        try onThread(timeout: .seconds(60)) {
            try device.bind(ClosureDriver(probe: { bound in
                reader.older.set(try Devres(bound, 1, strategy: strategy))
                registration.set(try Registration(bound, controller: controller, irq: irq, name: "reader", handler: reader))
                try bound.device.addAction(bound, name: "late-interrupt") {
                    // Runs after the newer Devres was released and before free_irq: an
                    // interrupt arrives now.
                    let value: Int? = reader.older.get()!.tryAccess { $0 }
                    tryAccessInWindow.set(value)
                    let before = reader.runs.load(ordering: .acquiring)
                    try? controller.raise(irq)
                    let deadline = monotonicNanoseconds() + 5_000_000_000
                    while reader.runs.load(ordering: .acquiring) == before && monotonicNanoseconds() < deadline { usleep(100) }
                }
                reader.newer.set(try Devres(bound, 2, strategy: strategy))
            }))
            try controller.raise(irq)
            try controller.quiesce()
            _ = try device.unbind(mode: mode)
        }
        #expect(reader.runs.load(ordering: .relaxed) == 2)
        #expect(reader.olderFailures.load(ordering: .relaxed) == 0, "older data is valid until after free_irq")
        let expectedTryAccess: Int? = strategy == .rcu && mode == .batched ? nil : 1
        #expect(tryAccessInWindow.get() == .some(expectedTryAccess))
        #expect(reader.newerFailures.load(ordering: .relaxed) == 1, "newer data was released: caught")
        #expect(device.log.reports(.violation).first?.headline == "BUG: irqemu: access to released Devres<Int> of device buggy")
    }
}

/// Devres drops handed to the reaper, seen from the thread that handed them over.
@Suite(.timeLimit(.minutes(1)))
struct DeferredDevresDropTests {
    /// A threaded handler unbinds its device inside a Devres access (that Devres's drop
    /// goes to the reaper, which will also stop this thread for the deferred free_irq),
    /// then drops the Devres's last handle on the same thread. Waiting there for the
    /// reaper's drop could deadlock, so the drop returns at once, as before, but now
    /// reported (found in review: it returned silently), and the reaper drops the value.
    @Test func aDevresDropAfterItsReleaseWentToTheReaperIsReportedNotWaitedFor() throws {
        // Per test run, not static: the test must pass when run twice in one process.
        final class Slow: Sendable {
            let finished: Box<Bool>
            init(finished: Box<Bool>) { self.finished = finished }
            deinit { usleep(300_000); finished.set(true) }
        }
        final class Fatal: ThreadedHandler {
            let state = Box<Devres<Slow>?>(nil)
            let finished = Box(false)
            let dropReturnedBeforeDeinitFinished = Box<Bool?>(nil)
            func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
                let owner = device.device
                _ = try? state.get()!.access(device) { _ in _ = try? owner.unbind() }
                state.set(nil)  // last handle: Devres.deinit on this thread
                dropReturnedBeforeDeinitFinished.set(!finished.get())
                return .handled
            }
        }
        let log = KernelLog(name: "probe")
        let result = try onThread(timeout: .seconds(10)) { () -> (Bool?, Bool)? in
            let controller = try IRQController()
            let irq = try controller.addSoftwareLine()
            let device = Device(name: "probe", log: log)
            let handler = Fatal()
            let registration = Box<ThreadedRegistration<Fatal>?>(nil)
            try device.bind(ClosureDriver(probe: { bound in
                handler.state.set(try Devres(bound, Slow(finished: handler.finished)))
                registration.set(try ThreadedRegistration(bound, controller: controller, irq: irq, name: "probe", handler: handler))
            }))
            try controller.raise(irq)
            try controller.quiesce(timeout: .seconds(5))
            _ = try Reaper.shared.flush(timeout: .seconds(5))
            return (handler.dropReturnedBeforeDeinitFinished.get(), handler.finished.get())
        }
        #expect(result?.0 == true, "the drop on the thread did not wait for the reaper")
        let dropped = result?.1 == true
        #expect(dropped, "the reaper dropped the value")
        #expect(log.reports.map(\.headline).contains { $0.hasSuffix("not waiting for it on the thread that handed it over") })
    }
}
