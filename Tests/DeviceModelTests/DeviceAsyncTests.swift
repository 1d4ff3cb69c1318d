import DeviceModel
import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

/// The async `Device.unbind(mode:)`: the blocking unbind's order and counts, with no thread
/// of the concurrency pool waiting; and a Devres dropped in a task, handed to the reaper.
@Suite(.timeLimit(.minutes(2)))
struct DeviceAsyncTests {
    /// A driver whose probe registers, oldest first: an RCU Devres, a release action, a
    /// mutex Devres, another RCU Devres; each records its release.
    struct Recording: Driver {
        let order: Box<[String]>
        let handles: Handles<Counted>
        let counter: Counted.Counter
        var name: String { "recording" }
        func probe(_ device: borrowing Device.Bound) throws {
            let order = self.order
            handles.append(try Devres(device, Counted(1, counter: counter) { _ in order.update { $0.append("rcu-1") } }))
            try device.device.addAction(device, name: "action-2") { order.update { $0.append("action-2") } }
            handles.append(try Devres(
                device, Counted(3, counter: counter) { _ in order.update { $0.append("mutex-3") } }, strategy: .mutex))
            handles.append(try Devres(device, Counted(4, counter: counter) { _ in order.update { $0.append("rcu-4") } }))
        }
    }

    @Test(arguments: UnbindMode.allCases)
    func anAsyncUnbindReleasesNewestFirstAndCountsItsGracePeriods(mode: UnbindMode) async throws {
        let device = Device(name: "async-\(mode)")
        let order = Box<[String]>([])
        let handles = Handles<Counted>()
        let counter = Counted.Counter()
        try Threads.onThread { try device.bind(Recording(order: order, handles: handles, counter: counter)) }
        let report = try await device.unbind(mode: mode)
        #expect(order.get() == ["rcu-4", "mutex-3", "action-2", "rcu-1"], "released newest first")
        #expect(report.released == 4)
        #expect(report.mode == mode)
        #expect(report.gracePeriods == (mode == .batched ? 1 : 2), "batched: one grace period; per-object: one per RCU Devres")
        #expect(counter.droppedCount == 3 && counter.createdCount == 3)
        #expect(!device.isBound)
        #expect(handles.all.allSatisfy { $0.tryAccess { _ in 1 } == nil })
        #expect(device.log.reports.isEmpty)
    }

    /// Unbind waits, on a runtime thread, for a `withBound` holder on another thread.
    @Test func anAsyncUnbindWaitsForWithBoundHolders() async throws {
        let device = Device(name: "held")
        try Threads.onThread { try device.bind(ClosureDriver()) }
        let gate = Gate("holder")
        let holder = try KThread(name: "holder") { _ = try? device.withBound { _ in gate.pass() } }
        #expect(await gate.reached())
        let opener = try gate.open(after: .milliseconds(50))
        _ = try await device.unbind()
        #expect(gate.passed == 1, "unbind returned while a holder was inside withBound")
        #expect(!device.isBound)
        try await opener.join()
        try await holder.join()
    }

    /// A cancelled task's unbind still releases everything and returns its report.
    @Test func aCancelledUnbindStillReleasesEverything() async throws {
        let device = Device(name: "cancelled")
        let order = Box<[String]>([])
        let handles = Handles<Counted>()
        let counter = Counted.Counter()
        try Threads.onThread { try device.bind(Recording(order: order, handles: handles, counter: counter)) }
        let gate = Gate("holder")
        let holder = try KThread(name: "holder") { _ = try? device.withBound { _ in gate.pass() } }
        #expect(await gate.reached())
        let opener = try gate.open(after: .milliseconds(20))
        let unbind = Task { try await device.unbind() }
        unbind.cancel()
        let report = try await unbind.value
        #expect(gate.passed == 1)
        #expect(report.released == 4 && report.gracePeriods == 1)
        #expect(counter.droppedCount == 3)
        #expect(order.get().count == 4)
        try await opener.join()
        try await holder.join()
    }

    /// Errors come back as the blocking unbind's.
    @Test func anAsyncUnbindOfAnUnboundDeviceThrowsNotBound() async {
        let device = Device(name: "never-bound")
        await #expect(throws: DeviceError.self) { try await device.unbind() }
    }

    /// The last reference to a Devres dropped in a task does not wait there: the drop is
    /// handed to the reaper (here the value's deinit waits for a gate that opens only once
    /// the drop has returned: done in place, the drop would wait 30 s for it). The gate is
    /// opened by a thread, not by the task: the reaper must never wait for a task, which
    /// other tests' blocking flushes of the reaper could keep off the pool.
    @Test func aDevresDroppedInATaskIsHandedToTheReaper() async throws {
        final class Blocker: Sendable {
            let gate: Gate
            let counter: Counted.Counter
            init(_ gate: Gate, _ counter: Counted.Counter) {
                self.gate = gate
                self.counter = counter
                counter.created.add(1, ordering: .relaxed)
            }
            deinit {
                gate.pass()
                counter.dropped.add(1, ordering: .relaxed)
            }
        }
        let device = Device(name: "task-drop")
        let handles = Handles<Blocker>()
        let gate = Gate("deinit")
        let counter = Counted.Counter()
        try Threads.onThread {
            try device.bind(ClosureDriver { bound in handles.append(try Devres(bound, Blocker(gate, counter))) })
        }
        let dropped = Flag()
        let opener = try gate.open(whenSet: dropped)
        let start = monotonicNanoseconds()
        handles.removeAll()  // the last reference goes here, in the task
        dropped.set()
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        #expect(seconds < 5, "the drop waited \(seconds) s in the task")
        try await opener.join()
        try await Reaper.shared.flush()
        #expect(counter.droppedCount == 1)
        #expect(device.resourceCount == 0)
        #expect(device.log.reports.isEmpty, "handing a task's drop over is not a bug: nothing reported")
        _ = try await device.unbind()
    }
}
