import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

/// The blocking calls the checker did not see — `KThread.join`, `Deadline.sleep`,
/// `ChildProcess.wait`, `TerminationSignal.wait` — are checked sleeping calls now: in
/// atomic context they are reported (`BUG: sleeping function called from invalid context`)
/// and refused at once, never a hang. And a timeout that passes throws the named timeout.
@Suite(.timeLimit(.minutes(2)))
struct BlockingCallCheckerTests {
    static let bugLine = "BUG: sleeping function called from invalid context at IRQCoreTests/BlockingCallCheckerTests.swift:"

    /// The report of a refused call is the kernel's, names this file and the function.
    static func checkReport(_ log: KernelLog, function: String, atomic: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(log.reports.count == 1, sourceLocation: sourceLocation)
        let report = log.reports.first
        #expect(report?.kind == .sleepInAtomic, sourceLocation: sourceLocation)
        #expect(report?.lines.contains { $0.hasPrefix(bugLine) } == true, "\(report?.lines ?? [])", sourceLocation: sourceLocation)
        #expect(report?.lines.contains { $0.hasPrefix(atomic) } == true, "\(report?.lines ?? [])", sourceLocation: sourceLocation)
        #expect(report?.lines.contains(" \(function) refused by irqemu (would sleep in atomic context)") == true,
                "\(report?.lines ?? [])", sourceLocation: sourceLocation)
    }

    /// `KThread.join` inside an RCU read section is reported and throws
    /// `WaitError.atomicContext` at once, although the thread is still running (it waits
    /// for a release that comes only after the join). Old code: join was not checked; it
    /// slept in the read section, here for the 10 s the target waits.
    @Test func joinInsideAReadSectionIsReportedAndRefused() throws {
        let log = KernelLog(name: "join")
        let release = DispatchSemaphore(value: 0)
        let result = try onThread(timeout: .seconds(30)) { () -> (WaitError?, UInt64, Bool, Bool) in
            let target = try KThread(name: "join-target") { _ = release.wait(timeout: .now() + 10) }
            let (error, took, finishedAtRefusal) = KernelLog.withCurrent(log) {
                RCU.read { () -> (WaitError?, UInt64, Bool) in
                    let start = monotonicNanoseconds()
                    let error = caught(WaitError.self) { try target.join(timeout: .seconds(10)) }
                    return (error, monotonicNanoseconds() - start, target.isFinished)
                }
            }
            release.signal()
            let joinedAfter = (try? target.join(timeout: .seconds(10))) != nil
            return (error, took, finishedAtRefusal, joinedAfter)
        }
        let (error, took, finishedAtRefusal, joinedAfter) = result
        guard case .atomicContext(let violation)? = error else {
            Issue.record("expected atomicContext, got \(String(describing: error))")
            return
        }
        #expect(violation.report.function == "KThread.join()")
        #expect(error?.errno == .invalidArgument)
        #expect(took < 1_000_000_000, "refused at once, not after waiting")
        #expect(!finishedAtRefusal, "the target was still running: the join would have slept")
        #expect(joinedAfter, "a join outside the section works")
        Self.checkReport(log, function: "KThread.join()", atomic: "in_atomic(): 0, irqs_disabled(): 0,")
        #expect(log.reports.first?.lines.contains("RCU nest depth: 1, expected: 0") == true)
    }

    /// The deadlock from issue 14: inside a read section, join a thread that waits for a
    /// grace period (`RCU.synchronize()`), which cannot end before the section does. The
    /// join is refused; the test then leaves the section and joins normally, within a
    /// deadline. Old code: the join slept in the section and neither thread ever returned.
    @Test func joinOfAThreadWaitingForAGracePeriodInsideAReadSectionIsRefused() throws {
        let log = KernelLog(name: "deadlock")
        let result = try onThread(timeout: .seconds(30)) { () -> (WaitError?, Bool, Bool, Bool) in
            let aboutToSynchronize = Atomic<Bool>(false)
            let synchronized = Atomic<Bool>(false)
            let (error, finishedInSection, waiter) = try KernelLog.withCurrent(log) {
                try RCU.read { () throws -> (WaitError?, Bool, KThread) in
                    // Started inside the section: its grace period must wait for this reader.
                    let waiter = try KThread(name: "gp-waiter") {
                        aboutToSynchronize.store(true, ordering: .releasing)
                        if (try? RCU.synchronize()) != nil { synchronized.store(true, ordering: .releasing) }
                    }
                    guard spin(upTo: 10, until: { aboutToSynchronize.load(ordering: .acquiring) }) else { throw TimedOut() }
                    let error = caught(WaitError.self) { try waiter.join() }
                    // Still in the section: the waiter cannot have finished its grace period.
                    return (error, synchronized.load(ordering: .acquiring), waiter)
                }
            }
            let joined = (try? waiter.join(timeout: .seconds(10))) != nil
            return (error, finishedInSection, joined, synchronized.load(ordering: .acquiring))
        }
        let (error, finishedInSection, joined, synchronizedAfter) = result
        if case .atomicContext? = error {} else { Issue.record("expected atomicContext, got \(String(describing: error))") }
        #expect(!finishedInSection, "the waiter's grace period waited for the read section")
        #expect(joined, "joined after the section ended")
        #expect(synchronizedAfter, "the waiter's synchronize completed once the section ended")
        Self.checkReport(log, function: "KThread.join()", atomic: "in_atomic(): 0,")
    }

    /// `Deadline.sleep()` under a `SpinLock` is refused (`AtomicContextViolation`) and does
    /// not sleep (it was asked for 2 s). Old code: it slept 2 s holding the spinlock.
    @Test func deadlineSleepUnderASpinLockIsRefusedAndDoesNotSleep() throws {
        let log = KernelLog(name: "sleep")
        let lock = SpinLock(0)
        let (violation, took) = try onThread { () -> (AtomicContextViolation?, UInt64) in
            KernelLog.withCurrent(log) {
                lock.withLock { _ in
                    let start = monotonicNanoseconds()
                    let violation = caught(AtomicContextViolation.self) { try Deadline.after(.seconds(2)).sleep() }
                    return (violation, monotonicNanoseconds() - start)
                }
            }
        }
        #expect(violation != nil)
        #expect(violation?.report.function == "Deadline.sleep()")
        #expect(took < 1_000_000_000, "did not sleep")
        Self.checkReport(log, function: "Deadline.sleep()", atomic: "in_atomic(): 1,")
        #expect(log.reports.first?.lines.contains("preempt_count: 1, expected: 0") == true)
    }

    /// `Deadline.sleep()` in process context sleeps until the deadline, unreported: the
    /// check refuses only atomic context.
    @Test func deadlineSleepInProcessContextSleeps() throws {
        let log = KernelLog(name: "sleep-ok")
        let took = try onThread { () -> UInt64 in
            try KernelLog.withCurrent(log) {
                let start = monotonicNanoseconds()
                try Deadline.after(.milliseconds(50)).sleep()
                return monotonicNanoseconds() - start
            }
        }
        #expect(took >= 50_000_000)
        #expect(log.reports.isEmpty)
    }

    /// `ChildProcess.wait(timeout:)` in a read section is refused with
    /// `IRQError.atomicContext` at once, and the child is left to be waited for outside.
    /// Old code: the wait polled inside the read section until the child exited.
    @Test func childProcessWaitInsideAReadSectionIsRefused() throws {
        let log = KernelLog(name: "child")
        let (error, took, status) = try onThread { () -> (IRQError?, UInt64, Int32) in
            let child = try ChildProcess(path: "/bin/sleep", arguments: ["5"])
            let (error, took) = KernelLog.withCurrent(log) {
                RCU.read { () -> (IRQError?, UInt64) in
                    let start = monotonicNanoseconds()
                    let error = caught(IRQError.self) { try child.wait(timeout: .seconds(10)) }
                    return (error, monotonicNanoseconds() - start)
                }
            }
            child.kill()
            return (error, took, try child.wait(timeout: .seconds(10)))
        }
        guard case .atomicContext(let violation)? = error else {
            Issue.record("expected atomicContext, got \(String(describing: error))")
            return
        }
        #expect(violation.report.function == "ChildProcess.wait(timeout:)")
        #expect(took < 1_000_000_000, "refused at once")
        #expect(status == 128 + SIGKILL, "the child was still running, and was reaped after the kill")
        Self.checkReport(log, function: "ChildProcess.wait(timeout:)", atomic: "in_atomic(): 0, irqs_disabled(): 0,")
    }

    /// `TerminationSignal.wait(timeout:)` with interrupts disabled is refused with
    /// `IRQError.atomicContext` at once, even with a signal pending (the check comes first).
    /// Old code: not checked; it polled with interrupts "disabled" for the whole timeout.
    @Test func terminationSignalWaitWithIRQsDisabledIsRefused() throws {
        let log = KernelLog(name: "termination")
        // Its own signal: SignalOwnershipTests uses top(0)...top(5).
        let signal = SignalOwnershipTests.top(10)
        let (error, took, received) = try onThread { () -> (IRQError?, UInt64, Int32) in
            let termination = try TerminationSignal([signal])
            let (error, took) = KernelLog.withCurrent(log) {
                AtomicContext.withIRQsDisabled { () -> (IRQError?, UInt64) in
                    let start = monotonicNanoseconds()
                    let error = caught(IRQError.self) { try termination.wait(timeout: .seconds(2)) }
                    return (error, monotonicNanoseconds() - start)
                }
            }
            SignalOwnershipTests.sendToThisThread(signal)
            return (error, took, try termination.wait(timeout: .seconds(5)))
        }
        guard case .atomicContext(let violation)? = error else {
            Issue.record("expected atomicContext, got \(String(describing: error))")
            return
        }
        #expect(violation.report.function == "TerminationSignal.wait(timeout:)")
        #expect(took < 1_000_000_000, "refused at once, not after the 2 s timeout")
        #expect(received == signal, "outside the irqs-off section the wait works")
        Self.checkReport(log, function: "TerminationSignal.wait(timeout:)", atomic: "in_atomic(): 0, irqs_disabled(): 1,")
    }

    /// A join whose timeout passes throws `WaitError.timedOut` naming the join and the
    /// timeout, after about the timeout (the thread sleeps 1 s; timeout 50 ms); the thread
    /// is not joined and can be joined later. Old code: a timeout surfaced as `false`.
    @Test func joinTimeoutThrowsTheNamedTimeout() throws {
        let (error, took, joinedLater) = try onThread { () -> (WaitError?, UInt64, Bool) in
            let sleeper = try KThread(name: "sleeper-1s") { usleep(1_000_000) }
            let start = monotonicNanoseconds()
            let error = caught(WaitError.self) { try sleeper.join(timeout: .milliseconds(50)) }
            let took = monotonicNanoseconds() - start
            return (error, took, (try? sleeper.join(timeout: .seconds(10))) != nil)
        }
        #expect(error == .timedOut(operation: "join of KThread sleeper-1s", after: .milliseconds(50)))
        #expect(error?.errno == .timedOut)
        #expect(took >= 50_000_000, "waited the timeout")
        #expect(took < 900_000_000, "did not wait for the thread")
        #expect(joinedLater)
    }

    /// A wait for a child still running throws `IRQError.timedOut` naming the child and the
    /// timeout (`/bin/sleep 5`, timeout 100 ms); it is killed and reaped afterwards. Old
    /// code: a timeout surfaced as `.system(call:errno: ETIMEDOUT)`.
    @Test func childProcessWaitTimeoutThrowsTheNamedTimeout() throws {
        let (error, took, pid, status) = try onThread { () -> (IRQError?, UInt64, pid_t, Int32) in
            let child = try ChildProcess(path: "/bin/sleep", arguments: ["5"])
            let start = monotonicNanoseconds()
            let error = caught(IRQError.self) { try child.wait(timeout: .milliseconds(100)) }
            let took = monotonicNanoseconds() - start
            child.kill()
            return (error, took, child.pid, try child.wait(timeout: .seconds(10)))
        }
        #expect(error == .timedOut(operation: "wait for child \(pid)", after: .milliseconds(100)))
        #expect(error?.errno == .timedOut)
        #expect(took >= 100_000_000 && took < 4_000_000_000)
        #expect(status == 128 + SIGKILL)
    }
}
