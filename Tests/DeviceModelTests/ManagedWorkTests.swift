import Foundation
import DeviceModel
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

/// A work item that counts its runs and can be held inside one.
final class DeviceJob: WorkItem {
    let work = Work(name: "device-job")
    let runs = Atomic<Int>(0)
    let body: Box<(@Sendable (DeviceJob) -> Void)?>
    init(body: (@Sendable (DeviceJob) -> Void)? = nil) { self.body = Box(body) }
    func run() {
        body.get()?(self)
        runs.add(1, ordering: .sequentiallyConsistent)
    }
}

/// `Device.register` (rust's `devres::register`) and managed work (`Device.addWork`).
@Suite(.timeLimit(.minutes(1)))
struct ManagedWorkTests {
    /// A registered value is dropped at its own LIFO place: after a newer action, before
    /// an older one.
    @Test(arguments: UnbindMode.allCases)
    func aRegisteredValueIsDroppedAtItsOwnPlaceDuringUnbind(mode: UnbindMode) throws {
        let order = Box<[String]>([])
        let counter = Counted.Counter()
        let device = Device(name: "register")
        try Threads.onThread {
            try device.bind(ClosureDriver { bound in
                try bound.device.addAction(bound, name: "C") { order.update { $0.append("C") } }
                try bound.device.register(bound, Counted(counter: counter) { _ in order.update { $0.append("X") } })
                try bound.device.addAction(bound, name: "B") { order.update { $0.append("B") } }
            })
            _ = try device.unbind(mode: mode)
        }
        #expect(order.get() == ["B", "X", "C"])
        #expect(counter.droppedCount == 1)
    }

    /// What `register` is for: a value captured by an `addAction` closure lives until the
    /// whole release has finished (actions C, A capturing X, B: released B, A, C, then X).
    @Test func aValueCapturedByAnActionIsDroppedAfterTheWholeRelease() throws {
        let order = Box<[String]>([])
        let counter = Counted.Counter()
        let device = Device(name: "captured")
        try Threads.onThread {
            try device.bind(ClosureDriver { bound in
                try bound.device.addAction(bound, name: "C") { order.update { $0.append("C") } }
                let x = Counted(counter: counter) { _ in order.update { $0.append("X") } }
                try bound.device.addAction(bound, name: "A") { withExtendedLifetime(x) { order.update { $0.append("A") } } }
                try bound.device.addAction(bound, name: "B") { order.update { $0.append("B") } }
            })
            _ = try device.unbind()
        }
        #expect(order.get() == ["B", "A", "C", "X"])
    }

    /// Registration that fails drops the value at once, as `devm_add_action_or_reset` does.
    @Test func aValueWhoseRegistrationFailsIsDroppedAtOnce() throws {
        let counter = Counted.Counter()
        let device = Device(name: "late-register")
        let other = Device(name: "other")
        let outcome = try Threads.onThread { () -> (DeviceError?, DeviceError?, Int) in
            let late = Box<DeviceError?>(nil)
            try device.bind(ClosureDriver { bound in
                // Runs during the release, when the device takes no more resources.
                try bound.device.addAction(bound, name: "late") {
                    late.set(caught(DeviceError.self) { try device.register(Device.Bound(device), Counted(counter: counter)) })
                }
            })
            try other.bind(ClosureDriver())
            let wrong = try other.withBound { bound in caught(DeviceError.self) { try device.register(bound, Counted(counter: counter)) } }
            _ = try device.unbind()
            _ = try other.unbind()
            return (late.get(), wrong, counter.droppedCount)
        }
        #expect(outcome?.0 == .notBound(device: "late-register", operation: "register"))
        #expect(outcome?.1 == .wrongDevice(expected: "late-register", given: "other"))
        #expect(outcome?.2 == 2, "both values dropped at once")
    }

    /// Managed work is cancelled at its LIFO place: after the newer action, before the older
    /// one (which finds it neither pending nor running); it stays disabled after.
    @Test(arguments: UnbindMode.allCases)
    func managedWorkIsDisabledAtItsPlaceAndStaysOff(mode: UnbindMode) throws {
        let order = Box<[String]>([])
        let queue = try Workqueue(name: "managed-\(mode)")
        let job = DeviceJob()
        let device = Device(name: "managed")
        try Threads.onThread {
            try device.bind(ClosureDriver { bound in
                try bound.device.addAction(bound, name: "older") {
                    order.update { $0.append("older: disabled \(job.work.isDisabled) busy \(job.work.isPending || job.work.isRunning)") }
                }
                try bound.device.addWork(bound, job)
                try bound.device.addAction(bound, name: "newer") {
                    order.update { $0.append("newer: disabled \(job.work.isDisabled)") }
                }
            })
            for _ in 0..<100 { queue.enqueue(job) }
            _ = try job.flushWork(timeout: .seconds(10))
            queue.enqueue(job)  // pending when unbind comes
            _ = try device.unbind(mode: mode)
        }
        #expect(order.get() == ["newer: disabled false", "older: disabled true busy false"])
        #expect(queue.enqueue(job) == .disabled, "stays off after unbind")
        #expect(job.runs.load(ordering: .relaxed) >= 1)
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// Batched unbind flips every RCU Devres first: a work item that runs between that flip
    /// and its own cancel finds the device's Devres already revoked.
    @Test func workRunningBetweenTheFlipAndItsCancelSeesTheDevresRevoked() throws {
        let queue = try Workqueue(name: "managed-flip")
        let gate = RunGate()
        let seen = Box<[Int?]>([])
        let config = Box<Devres<Int>?>(nil)
        let job = DeviceJob { _ in
            gate.pass()
            seen.update { $0.append(config.get()?.tryAccess { $0 }) }
        }
        let device = Device(name: "flip")
        try Threads.onThread {
            try device.bind(ClosureDriver { bound in
                config.set(try Devres(bound, 42))
                try bound.device.addWork(bound, job)
            })
        }
        queue.enqueue(job)
        #expect(gate.waitUntilHeld(), "the item runs")
        let unbinder = try KThread(name: "unbinder") { _ = try? device.unbind(mode: .batched) }
        #expect(spin(upTo: 5) { config.get()?.isRevoked == true }, "the flip happened; the cancel waits for the run")
        gate.release()
        try unbinder.join(timeout: .seconds(10))
        #expect(seen.get() == [nil], "the item saw the Devres revoked")
        try Threads.onThread { try queue.destroyQueue() }
    }

    /// addWork on a device that takes no resources: refused, and the item disabled at once.
    @Test func addWorkOnADeviceBeingReleasedDisablesTheItemAtOnce() throws {
        let job = DeviceJob()
        let device = Device(name: "late-work")
        let error = try Threads.onThread { () -> DeviceError? in
            let error = Box<DeviceError?>(nil)
            try device.bind(ClosureDriver { bound in
                try bound.device.addAction(bound, name: "late") {
                    error.set(caught(DeviceError.self) { try device.addWork(Device.Bound(device), job) })
                }
            })
            _ = try device.unbind()
            return error.get()
        }
        #expect(error == .notBound(device: "late-work", operation: "addWork"))
        #expect(job.work.isDisabled)
    }
}

/// Work a driver manages by hand: remove must stop it with a sync call. A cancel or disable
/// that does not wait, made by remove, is reported once the unbind is over if the item is
/// still running (it did not wait) or pending (queued again before the release was over).
@Suite(.timeLimit(.minutes(1)))
struct NonSyncCancelTests {
    enum Stop: String, CaseIterable, Sendable { case cancelWork, disableWork, disableWorkSync }

    /// The item is running (held at a gate) when remove stops it.
    @Test(arguments: Stop.allCases)
    func aRunningItemThatRemoveDoesNotWaitForIsReported(stop: Stop) throws {
        let gate = RunGate()
        let job = DeviceJob { _ in gate.pass() }
        let device = Device(name: "nonsync-\(stop.rawValue)")
        try Threads.onThread {
            try device.bind(ClosureDriver(probe: { _ in }, remove: { _ in
                switch stop {
                case .cancelWork: job.cancelWork()
                case .disableWork: job.disableWork()
                case .disableWorkSync:
                    // The twin waits for the run, which the gate ends a little later.
                    let opener = try? KThread(name: "opener") { usleep(20_000); gate.release() }
                    _ = try? job.disableWorkSync()
                    try? opener?.join()
                }
            }))
            Workqueue.system.enqueue(job)
            #expect(gate.waitUntilHeld())
            _ = try device.unbind()
            if stop != .disableWorkSync { gate.release() }
            _ = try job.flushWork(timeout: .seconds(10))
        }
        let reports = device.log.reports(.violation)
        if stop == .disableWorkSync {
            #expect(reports.isEmpty, "\(reports.map(\.lines))")
        } else {
            #expect(reports.map(\.headline) == [
                "WARNING: irqemu: work DeviceJob.run of device nonsync-\(stop.rawValue), cancelled with \(stop.rawValue)() by its driver, is still running after its unbind",
            ])
        }
    }

    /// cancelWork in remove, then the item queued again before the release is over (here by
    /// a release action; in a driver, by its handler before free_irq): still pending after
    /// (behind a held item on an ordered queue).
    @Test func anItemQueuedAgainAfterANonSyncCancelIsReportedPending() throws {
        let gate = RunGate()
        let blocker = DeviceJob { _ in gate.pass() }
        let job = DeviceJob()
        let queue = try Workqueue.ordered(name: "nonsync-ordered")
        let device = Device(name: "nonsync-requeue")
        try Threads.onThread {
            try device.bind(ClosureDriver(probe: { bound in
                try bound.device.addAction(bound, name: "late-irq") { queue.enqueue(job) }
            }, remove: { _ in job.cancelWork() }))
            queue.enqueue(blocker)
            #expect(gate.waitUntilHeld())
            _ = try device.unbind()
            gate.release()
            try queue.destroyQueue()
        }
        #expect(job.runs.load(ordering: .relaxed) == 1)
        #expect(device.log.reports(.violation).map(\.headline) == [
            "WARNING: irqemu: work DeviceJob.run of device nonsync-requeue, cancelled with cancelWork() by its driver, is still pending after its unbind",
        ])
    }
}

/// Holds a run until released (10 s at most).
final class RunGate: Sendable {
    private let entered = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)
    init() {}
    func pass() {
        entered.signal()
        _ = released.wait(timeout: .now() + 10)
    }
    @discardableResult
    func waitUntilHeld() -> Bool { entered.wait(timeout: .now() + 10) == .success }
    func release() { released.signal() }
}

/// Spins (without sleeping) up to `seconds` for `condition`.
func spin(upTo seconds: Double, until condition: () -> Bool) -> Bool {
    let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
    while !condition() {
        if monotonicNanoseconds() > deadline { return false }
        sched_yield()
    }
    return true
}
