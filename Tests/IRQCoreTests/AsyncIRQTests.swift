import Foundation
@testable import IRQCore
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// A threaded handler whose threaded part waits at `gate` (until the test opens it) and
/// counts its runs; runs after `freed` was set are counted apart.
final class HeldHandler: ThreadedHandler {
    let gate: Gate
    let primaries = AtomicCounter()
    let threads = AtomicCounter()
    let late = AtomicCounter()
    let freed = Flag()
    let counter: Counted.Counter?

    init(_ gate: Gate, counter: Counted.Counter? = nil) {
        self.gate = gate
        self.counter = counter
        counter?.created.add(1, ordering: .relaxed)
    }

    deinit { counter?.dropped.add(1, ordering: .relaxed) }

    func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn {
        if freed.isSet { late.increment() }
        primaries.increment()
        return .wakeThread
    }

    func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
        if freed.isSet { late.increment() }
        threads.increment()
        gate.pass()
        return .handled
    }

    /// The same, for `requestThreadedIRQ` by number.
    var primary: @Sendable (IRQNumber) -> ThreadedIRQReturn {
        { [self] _ in
            if freed.isSet { late.increment() }
            primaries.increment()
            return .wakeThread
        }
    }

    var thread: @Sendable (IRQNumber) -> IRQReturn {
        { [self] _ in
            if freed.isSet { late.increment() }
            threads.increment()
            gate.pass()
            return .handled
        }
    }
}

/// The async overloads of free_irq, synchronize_irq, disable_irq, quiesce and a
/// registration's trySynchronize; unbind freeing IRQs; registrations and controllers
/// dropped in a task.
@Suite(.timeLimit(.minutes(2)))
struct AsyncIRQTests {
    /// free_irq waits, on a runtime thread, for the action's running thread; once it has
    /// returned no handler of the action runs again.
    @Test func freeIRQWaitsForTheRunningThreadAndNothingRunsAfter() async throws {
        let controller = try IRQController(cpus: 2)
        let irq = try controller.addSoftwareLine()
        let gate = Gate("thread")
        let handler = HeldHandler(gate)
        let cookie = Cookie()
        try Threads.onThread {
            try controller.requestThreadedIRQ(irq, name: "held", devID: cookie, handler: handler.primary, thread: handler.thread)
        }
        try controller.raise(irq)
        #expect(await gate.reached())
        let opener = try gate.open(after: .milliseconds(50))
        let free = Task { (try await controller.freeIRQ(irq, devID: cookie), gate.passed == 1) }
        // The action goes from the line first; the free then waits for its thread.
        #expect(try await eventually { try controller.stats(irq).actions.isEmpty })
        let (name, openWhenReturned) = try await free.value
        #expect(name == "held")
        #expect(openWhenReturned, "free_irq returned while the action's thread ran")
        try await opener.join()
        handler.freed.set()
        for _ in 0..<5 { try controller.raise(irq) }
        try await controller.quiesce()
        #expect(handler.late.value == 0, "a handler ran after free_irq returned")
        await #expect(throws: IRQError.alreadyFree(irq: irq)) { try await controller.freeIRQ(irq, devID: cookie) }
    }

    /// synchronize_irq and disable_irq wait for the running thread; disable_irq's depth is
    /// taken at once.
    @Test func synchronizeAndDisableWaitForTheRunningThread() async throws {
        let controller = try IRQController(cpus: 2)
        let irq = try controller.addSoftwareLine()
        let gate = Gate("thread")
        let handler = HeldHandler(gate)
        try Threads.onThread {
            try controller.requestThreadedIRQ(irq, name: "held", handler: handler.primary, thread: handler.thread)
        }
        try controller.raise(irq)
        #expect(await gate.reached())
        let opener = try gate.open(after: .milliseconds(50))
        let sync = Task {
            try await controller.synchronizeIRQ(irq)
            return gate.passed == 1
        }
        let disable = Task {
            try await controller.disableIRQ(irq)
            return gate.passed == 1
        }
        #expect(try await eventually { try controller.depth(of: irq) == 1 }, "disable_irq's depth is taken before it waits")
        #expect(try await sync.value, "synchronize_irq returned while the line's thread ran")
        #expect(try await disable.value, "disable_irq returned while the line's thread ran")
        try await opener.join()
        try controller.enableIRQ(irq)
        #expect(try controller.depth(of: irq) == 0)
        _ = try await controller.freeIRQ(irq)
    }

    /// quiesce returns once what was raised has been delivered and its thread has run.
    @Test func quiesceWaitsForDeliveryAndThreads() async throws {
        let controller = try IRQController(cpus: 2)
        let irq = try controller.addEventFDLine()
        let gate = Gate("thread")
        gate.open()
        let handler = HeldHandler(gate)
        try Threads.onThread {
            try controller.requestThreadedIRQ(irq, name: "counted", handler: handler.primary, thread: handler.thread)
        }
        for n in 1...20 {
            try controller.raise(irq)
            try await controller.quiesce()
            #expect(handler.primaries.value == n && handler.threads.value == n)
        }
        _ = try await controller.freeIRQ(irq)
    }

    /// A registration's trySynchronize waits for its running thread; after unbind it
    /// throws ENODEV.
    @Test func trySynchronizeWaitsThenThrowsAfterUnbind() async throws {
        let controller = try IRQController(cpus: 2)
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "held", resources: [.irq(irq, on: controller)])
        let gate = Gate("thread")
        let handler = HeldHandler(gate)
        let registration = try #require(try Threads.onThread { () -> ThreadedRegistration<HeldHandler> in
            try device.bind(ClosureDriver())
            return try device.withBound { bound in try ThreadedRegistration(try bound.irq(at: 0), name: "held", handler: handler) }
        })
        try controller.raise(irq)
        #expect(await gate.reached())
        let opener = try gate.open(after: .milliseconds(50))
        try await registration.trySynchronize()
        #expect(gate.passed == 1, "trySynchronize returned while the line's thread ran")
        try await opener.join()
        let report = try await device.unbind()
        #expect(report.gracePeriods == 1)
        await #expect(throws: IRQError.noDevice(device: "held")) { try await registration.trySynchronize() }
    }

    /// An async unbind frees the device's IRQs before it returns, although the registration
    /// lives on; its handler never runs after.
    @Test(arguments: RevocationStrategy.allCases)
    func anAsyncUnbindFreesTheIRQBeforeItReturns(strategy: RevocationStrategy) async throws {
        let controller = try IRQController(cpus: 2)
        let irq = try controller.addEventFDLine()
        let device = Device(name: "sensor", resources: [.irq(irq, on: controller)])
        let counter = Counted.Counter()
        let handler = CountingHandler(counter: counter)
        let registration = try #require(try Threads.onThread { () -> Registration<CountingHandler> in
            try device.bind(ClosureDriver())
            return try device.withBound { bound in
                try Registration(try bound.irq(at: 0), name: "sensor", strategy: strategy, handler: handler)
            }
        })
        try controller.raise(irq)
        try await controller.quiesce()
        #expect(handler.primaries.load(ordering: .relaxed) == 1)
        let report = try await device.unbind()
        #expect(!registration.isRequested, "free_irq ran before unbind returned")
        #expect(try controller.stats(irq).actions.isEmpty)
        #expect(report.released == 1 && report.gracePeriods == (strategy == .rcu ? 1 : 0))
        handler.dead.store(true, ordering: .releasing)
        for _ in 0..<5 { try controller.raise(irq) }
        try await controller.quiesce()
        #expect(handler.afterDeath.load(ordering: .relaxed) == 0)
        #expect(handler.primaries.load(ordering: .relaxed) == 1)
    }

    /// The last reference to a registration dropped in a task while its thread runs: the
    /// action is unlinked at once (its handler never starts again) and the wait for the
    /// thread is handed to the reaper, unreported; the task does not wait.
    @Test func aRegistrationDroppedInATaskDoesNotWaitForItsThread() async throws {
        let controller = try IRQController(cpus: 2)
        let irq = try controller.addSoftwareLine()
        let device = Device(name: "dropped", resources: [.irq(irq, on: controller)])
        let gate = Gate("thread")
        let counter = Counted.Counter()
        let handler = HeldHandler(gate, counter: counter)
        let slot = Box<ThreadedRegistration<HeldHandler>?>(try Threads.onThread {
            try device.bind(ClosureDriver())
            return try device.withBound { bound in try ThreadedRegistration(try bound.irq(at: 0), name: "held", handler: handler) }
        })
        try controller.raise(irq)
        #expect(await gate.reached())
        // The gate opens from a thread once the drop returned: the reaper, which other
        // tests flush from threads of the pool, must never wait for a task.
        let dropped = Flag()
        let opener = try gate.open(whenSet: dropped)
        let start = monotonicNanoseconds()
        slot.set(nil)  // the last reference goes here, in the task
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        #expect(try controller.stats(irq).actions.isEmpty, "the action was unlinked at once")
        handler.freed.set()
        try controller.raise(irq)
        dropped.set()
        #expect(seconds < 5, "the drop waited \(seconds) s for the running thread")
        try await opener.join()
        try await Reaper.shared.flush()
        try await controller.quiesce()
        #expect(handler.late.value == 0, "the handler ran after its registration was dropped")
        #expect(device.resourceCount == 0)
        #expect(device.log.reports.isEmpty && controller.log.reports.isEmpty, "nothing reported")
        _ = try await device.unbind()
    }

    /// The last reference to a controller released in a task while a thread of it runs:
    /// shut down on the reaper; the task does not wait.
    @Test func aControllerReleasedInATaskIsShutDownOnTheReaper() async throws {
        let gate = Gate("thread")
        let counter = Counted.Counter()
        let slot = Box<IRQController?>(try IRQController(cpus: 1))
        let log = slot.get()!.log
        try {
            let controller = slot.get()!
            let irq = try controller.addSoftwareLine()
            let handler = HeldHandler(gate, counter: counter)
            try Threads.onThread {
                try controller.requestThreadedIRQ(irq, name: "held", handler: handler.primary, thread: handler.thread)
            }
            try controller.raise(irq)
        }()
        #expect(await gate.reached())
        let dropped = Flag()
        let opener = try gate.open(whenSet: dropped)
        let start = monotonicNanoseconds()
        slot.set(nil)  // the last reference goes here, in the task
        dropped.set()
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        #expect(seconds < 5, "the release waited \(seconds) s for the running thread")
        try await opener.join()
        try await Reaper.shared.flush()
        #expect(counter.droppedCount == 1, "the shutdown freed the action, and its handler data went")
        #expect(log.reports.isEmpty)
    }
}
