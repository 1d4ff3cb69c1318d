import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

/// The atomic-context checker: sleeping calls in atomic context are reported with the
/// kernel's lines and refused, never a hang; the state is unchanged afterwards.
@Suite(.timeLimit(.minutes(1)))
struct CheckerTests {
    static let bugLine = "BUG: sleeping function called from invalid context at "

    @Test func synchronizeInsideReadSectionIsReportedAndRefused() {
        let log = KernelLog(name: "t")
        let result = Threads.onThread { () -> (Bool, Int, UInt64) in
            KernelLog.withCurrent(log) {
                let before = RCU.gracePeriodsWaitedByCurrentThread
                var refused = false
                var depthAfter = -1
                RCU.read {
                    do { try RCU.synchronize() } catch { refused = true }
                    depthAfter = RCU.readDepth
                }
                return (refused, depthAfter, RCU.gracePeriodsWaitedByCurrentThread - before)
            }
        }
        #expect(result != nil, "synchronize inside a read-side section hung")
        #expect(result?.0 == true)
        #expect(result?.1 == 1, "still inside the read-side section after the refusal")
        #expect(result?.2 == 0, "no grace period was waited")
        let report = log.reports.first
        #expect(log.reports.count == 1)
        #expect(report?.kind == .sleepInAtomic)
        #expect(report?.lines.contains("Illegal synchronize_rcu() in RCU read-side critical section!") == true)
        #expect(report?.lines.contains { $0.hasPrefix(Self.bugLine + "KernelRuntimeTests/CheckerTests.swift:") } == true)
        #expect(report?.lines.contains("RCU nest depth: 1, expected: 0") == true)
        #expect(report?.lines.contains { $0.hasPrefix("in_atomic(): 0, irqs_disabled(): 0, non_block: 0, pid: ") } == true)
    }

    @Test func sleepingCallsUnderASpinLockAreRefused() {
        let log = KernelLog(name: "t")
        let lock = SpinLock(0)
        let mutex = SleepingMutex(0)
        let completion = Completion()
        completion.complete()
        let refusals = Threads.onThread { () -> [Bool] in
            KernelLog.withCurrent(log) {
                lock.withLock { _ in
                    [
                        (try? RCU.synchronize()) == nil,
                        (try? RCU.barrier()) == nil,
                        (try? mutex.withLock { $0 += 1 }) == nil,
                        (try? completion.wait(timeout: .seconds(1))) == nil,
                    ]
                }
            }
        }
        #expect(refusals == [true, true, true, true])
        #expect(log.reports.count == 4)
        #expect(log.reports.allSatisfy { $0.lines.contains("preempt_count: 1, expected: 0") })
        #expect(log.reports.allSatisfy { $0.lines.contains { $0.hasPrefix("in_atomic(): 1,") } })
        #expect(completion.isDone, "the refused wait consumed nothing")
        #expect((try? mutex.withLock { $0 }) == 0, "the refused lock changed nothing")
    }

    @Test func sleepingPrimitivesInsideAReadSectionAreRefused() {
        let log = KernelLog(name: "t")
        let mutex = SleepingMutex(0)
        let completion = Completion()
        completion.complete()
        let refusals = Threads.onThread { () -> [Bool] in
            KernelLog.withCurrent(log) {
                RCU.read {
                    [
                        (try? mutex.withLock { $0 += 1 }) == nil,
                        (try? completion.wait(timeout: .seconds(1))) == nil,
                        (try? RCU.barrier()) == nil,
                    ]
                }
            }
        }
        #expect(refusals == [true, true, true])
        #expect(log.reports.count == 3)
        #expect(log.reports.allSatisfy { $0.kind == .sleepInAtomic })
        #expect(log.reports.allSatisfy { $0.lines.contains { $0.hasPrefix(Self.bugLine + "KernelRuntimeTests/CheckerTests.swift:") } })
        #expect(log.reports.allSatisfy { $0.lines.contains("RCU nest depth: 1, expected: 0") })
        #expect(completion.isDone, "the refused wait consumed nothing")
        #expect((try? mutex.withLock { $0 }) == 0, "the refused lock changed nothing")
    }

    @Test func irqsDisabledIsAtomic() {
        let log = KernelLog(name: "t")
        let result = Threads.onThread { () -> (KernelReport?, atomicAfter: Bool, gracePeriods: UInt64) in
            let before = RCU.gracePeriodsWaitedByCurrentThread
            let report = KernelLog.withCurrent(log) {
                AtomicContext.withIRQsDisabled { () -> KernelReport? in
                    do { try RCU.synchronize(); return nil } catch { return (error as? AtomicContextViolation)?.report }
                }
            }
            return (report, AtomicContext.isAtomic, RCU.gracePeriodsWaitedByCurrentThread - before)
        }
        #expect(result?.0?.lines.contains { $0.hasPrefix("in_atomic(): 0, irqs_disabled(): 1,") } == true)
        #expect(result?.atomicAfter == false, "the irqs-off section ended with its scope")
        #expect(result?.gracePeriods == 0, "the refused synchronize waited for nothing")
    }

    @Test func processContextIsNotReported() throws {
        let log = KernelLog(name: "t")
        let ok = Threads.onThread { () -> Bool in
            KernelLog.withCurrent(log) {
                (try? RCU.synchronize()) != nil && (try? SleepingMutex(1).withLock { $0 }) == 1
            }
        }
        #expect(ok == true)
        #expect(log.reports.isEmpty)
    }

    /// Two threads make reports at the same time into their own logs: each log holds only
    /// its own thread's reports.
    @Test func parallelLogsSeeOnlyTheirOwnReports() {
        let logs = [KernelLog(name: "a"), KernelLog(name: "b")]
        Threads.run(2, name: "log") { index in
            KernelLog.withCurrent(logs[index]) {
                for _ in 0..<(index + 1) * 25 {
                    RCU.read { _ = try? RCU.synchronize() }
                }
            }
        }
        #expect(logs[0].reports.count == 25)
        #expect(logs[1].reports.count == 50)
        let tids = logs.map { Set($0.reports.map(\.tid)) }
        #expect(tids[0].count == 1 && tids[1].count == 1 && tids[0] != tids[1])
    }

    @Test func panicOnReportCrashesWithTheReport() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            panicInReadSection()
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("BUG: sleeping function called from invalid context"))
    }

    @Test func readLockOnAThreadUnregisteredByHandTraps() async {
        await #expect(processExitsWith: .failure) {
            readLockAfterUnregister()
        }
    }

    /// Flushing the reaper from work running on it would wait for that work: refused at
    /// once with lockdep's report of its queue's map, and the queue goes on.
    @Test func reaperFlushFromItsOwnWorkIsRefusedAtOnce() throws {
        let log = KernelLog(name: "flush")
        let result = Box<(WaitError?, UInt64)>((nil, 0))
        Reaper.shared.schedule("flush from the reaper") {
            KernelLog.withCurrent(log) {
                let start = monotonicNanoseconds()
                let error = caught(WaitError.self) { try Reaper.shared.flush(timeout: .seconds(5)) }
                result.set((error, monotonicNanoseconds() - start))
            }
        }
        #expect(Threads.onThread { (try? Reaper.shared.flush(timeout: .seconds(20))) != nil } == true)
        let (error, took) = result.get()
        #expect(error == .wouldDeadlock(reason: "flushQueue() of workqueue irqemu_reaper from its own item ClosureWork.run would wait for itself"))
        #expect(took < 2_000_000_000, "refused at once, not after the timeout")
        #expect(log.reports.map(\.headline) == ["WARNING: possible recursive locking detected"])
        #expect(log.reports.first?.lines.contains { $0.hasSuffix(" ((wq_completion)irqemu_reaper){+.+.}-{0:0}, at: process_one_work") } == true)
    }
}

/// Exit-test bodies are async; the blocking joins live in these synchronous helpers.
func panicInReadSection() {
    let log = KernelLog(name: "panic", panicOnReport: true)
    let thread = try! KThread(name: "panicker") {
        KernelLog.withCurrent(log) { RCU.read { _ = try? RCU.synchronize() } }
    }
    try! thread.join()
}

func readLockAfterUnregister() {
    let thread = try! KThread(name: "unregistered") {
        RCUThread.register()
        RCUThread.unregister()
        RCU.read {}
    }
    try! thread.join()
}
