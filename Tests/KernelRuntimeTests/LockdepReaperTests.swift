import KernelRuntime
import TestSupport
import Testing

/// `Reaper.flush` waits for reaper work: flushing under a lock that reaper work takes is
/// reported (the kernel's flush_workqueue under a lock the work takes).
@Suite(.timeLimit(.minutes(1)))
struct LockdepReaperTests {
    @Test func flushUnderALockThatReaperWorkTakesIsCircular() {
        LockdepGate.run {
            let log = KernelLog(name: "reaper-flush")
            let lock = SleepingMutex(0, key: LockClassKey("reaper-test->lock"))
            run("ld-flush", log) {
                Reaper.shared.schedule("take the lock") { _ = try? lock.withLock { $0 += 1 } }
                try? Reaper.shared.flush()
            }
            #expect(log.reports.isEmpty)
            // Nothing is queued now: this flush waits for nothing, but could deadlock if it did.
            run("ld-flush", log) { try? lock.withLock { _ in try? Reaper.shared.flush() } }
            #expect(log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
            let lines = log.reports.first?.lines ?? []
            #expect(lines.contains { $0.contains(" ((wq_completion)irqemu_reaper){+.+.}-{0:0}, at: KernelRuntimeTests/LockdepReaperTests.swift:") })
        }
    }

    @Test func flushOutsideTheLockIsSilent() {
        LockdepGate.run {
            let log = KernelLog(name: "reaper-flush-ok")
            let lock = SleepingMutex(0)
            run("ld-flush", log) {
                Reaper.shared.schedule("take the lock") { _ = try? lock.withLock { $0 += 1 } }
                try? Reaper.shared.flush()
                try? lock.withLock { $0 += 1 }
                try? Reaper.shared.flush()
            }
            #expect(log.reports.isEmpty)
        }
    }
}
