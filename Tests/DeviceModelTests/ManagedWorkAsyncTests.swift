import DeviceModel
import Foundation
import KernelRuntime
import Synchronization
import TestSupport
import Testing

/// Managed work (`Device.addWork`) under the async unbind.
@Suite(.holdsHighPriorityKworkers, .timeLimit(.minutes(3)))
struct ManagedWorkAsyncTests {
    /// The async unbind's managed cancel (`disableWorkSync`) waits for the item's held run,
    /// on the runtime thread the whole release runs on (no thread of the concurrency pool
    /// waits): an older action, released after the cancel, runs there and sees the run
    /// finished; once the await returns the item is idle and stays off.
    @Test(arguments: UnbindMode.allCases)
    func anAsyncUnbindWaitsOnARuntimeThreadForItsManagedWorksRun(mode: UnbindMode) async throws {
        let device = Device(name: "managed-async-\(mode)")
        let queue = try Workqueue(name: "wq-managed-async-\(mode)", flags: .highPri)
        let gate = Gate("run", holdAtMost: kworkerHold)  // opened by the checker below
        let item = DeviceJob { _ in gate.pass() }
        let seen = Box<(thread: String, inTask: Bool, runs: Int)?>(nil)
        try Threads.onThread {
            try device.bind(ClosureDriver { bound in
                // Older than the work: released after its cancel.
                try bound.device.addAction(bound, name: "after-cancel") {
                    seen.set((KThread.currentName, TaskContext.isInTask, item.runs.load(ordering: .sequentiallyConsistent)))
                }
                try bound.device.addWork(bound, item)
            })
        }
        #expect(queue.enqueue(item) == .queued)
        #expect(await gate.reached())
        let returned = Flag()
        let unbind = Task {
            let report = try await device.unbind(mode: mode)
            returned.set()
            return report
        }
        // Checked and opened from a thread, not a task: the held run keeps a kworker, and
        // the pool's threads may be busy with other suites' synchronous tests for long.
        let observed = Box<(started: Bool, returned: Bool, released: Bool)?>(nil)
        let checker = try KThread(name: "checker") {
            let deadline = Deadline.after(.seconds(90))
            while device.isBound && !deadline.hasPassed { usleep(200) }  // the unbind has begun
            let started = !device.isBound
            usleep(50_000)
            observed.set((started, returned.isSet, seen.get() != nil))
            gate.open()
        }
        try await checker.join(timeout: .seconds(100))
        let held = try #require(observed.get())
        #expect(held.started, "the unbind began")
        #expect(!held.returned, "returned while the managed work's run was held")
        #expect(!held.released, "the release waits at the work's cancel")
        let report = try await unbind.value
        #expect(report.released == 2)
        let release = try #require(seen.get())
        #expect(release.thread.hasPrefix("irqemu-async/"), "the release ran on a runtime thread, not \(release.thread)")
        #expect(!release.inTask)
        #expect(release.runs == 1, "the managed cancel had waited for the run")
        #expect(!item.work.isRunning && !item.work.isPending && item.work.isDisabled)
        #expect(queue.enqueue(item) == .disabled, "off once unbound")
        try await queue.destroyQueue()
    }
}
