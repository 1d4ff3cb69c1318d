import KernelRuntime
import SystemPackage
import Synchronization
import TestSupport
import Testing

/// The thread-failure fault is aimed at the code under test's error paths (request_irq, a
/// controller's CPUs): irqemu's own runtime threads are never refused by it, so an injected
/// failure cannot leave an await, a kworker or a timer without its thread.
@Suite struct RuntimeThreadFaultTests {
    static let failEveryThread: Faults = {
        var faults = Faults(seed: 11)
        faults.threadCreationFailure = 1
        return faults
    }()

    @Test func aRuntimeThreadStartsWhereAnInjectedFailureRefusesOthers() throws {
        let faults = Self.failEveryThread
        FaultInjection.scopeCreated(faults)
        let (refused, started) = FaultInjection.withScope(faults) { () -> (Errno?, Bool) in
            let refused: Errno?
            do throws(Errno) {
                let thread = try KThread(name: "under-test") {}
                try? thread.join()
                refused = nil
            } catch {
                refused = error
            }
            let ran = Atomic<Bool>(false)
            let runtime = try? KThread(runtime: "runtime") { ran.store(true, ordering: .relaxed) }
            try? runtime?.join(timeout: .seconds(10))
            return (refused, runtime != nil && ran.load(ordering: .relaxed))
        }
        #expect(refused == .resourceTemporarilyUnavailable, "the fault fires for a thread under test")
        #expect(started, "a runtime thread is not refused")
    }

    /// A blocking pool whose first worker is started under the fault still runs its work
    /// (it used to lose the worker and leave the work queued until a later submit).
    @Test func aBlockingPoolStartsItsWorkersUnderTheFault() throws {
        let faults = Self.failEveryThread
        FaultInjection.scopeCreated(faults)
        let pool = BlockingPool(name: "fault-pool", minimumWorkers: 1)
        let done = Completion()
        FaultInjection.withScope(faults) { pool.submit { done.complete() } }
        let completed = try Threads.onThread { () throws(WaitError) -> Bool in
            try done.wait(timeout: .seconds(10))
            return true
        }
        #expect(completed == true, "the work ran on the pool's worker")
        #expect(pool.workerCount == 1)
    }
}
