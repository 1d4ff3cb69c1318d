import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

/// Runs `body` on a fresh thread named `name`, with `log` in scope, and waits for it: the
/// tests take the two orders of a pair on different threads, one after the other, so
/// nothing ever contends and nothing can deadlock.
@discardableResult
func run<R: Sendable>(_ name: String, _ log: KernelLog, _ body: @escaping @Sendable () -> R) -> R? {
    Threads.onThread(name: name, timeout: .seconds(30)) { KernelLog.withCurrent(log) { body() } }
}

/// Runs `body` as a hard-IRQ handler would (the dispatcher's context).
func asHardIRQ<R>(_ body: () -> R) -> R {
    AtomicContext.enterHardIRQ()
    defer { AtomicContext.exitHardIRQ() }
    return body()
}

/// Two mutexes of one class (made on one line), and that line.
func sameClassMutexes() -> (SleepingMutex<Int>, SleepingMutex<Int>, UInt) { (SleepingMutex(0), SleepingMutex(0), #line) }

extension KernelLog {
    /// The lock validator's reports' headlines.
    var lockdepHeadlines: [String] { reports(.lockdep).map(\.headline) }
}

/// The lock validator's reports, each provoked without the deadlock ever happening, and
/// their correct twins, which report nothing. Every lock here is created on a line of its
/// own (a class of its own), so these tests run in parallel with each other and with the
/// rest of the suite.
@Suite(.timeLimit(.minutes(2)))
struct LockdepTests {
    // MARK: - Circular

    @Test func abbaOnTwoThreadsIsReportedOnce() {
        LockdepGate.run {
            let log = KernelLog(name: "abba")
            let a = SleepingMutex(0, key: LockClassKey("test->a"))
            let b = SleepingMutex(0, key: LockClassKey("test->b"))
            run("ld-ab", log) { try? a.withLock { _ in try? b.withLock { _ in } } }
            #expect(log.reportCount == 0, "one order alone is fine")
            let baLine = #line + 1
            run("ld-ba", log) { try? b.withLock { _ in try? a.withLock { _ in } } }
            run("ld-ba", log) { try? b.withLock { _ in try? a.withLock { _ in } } }
            #expect(log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"], "reported once")
            guard let lines = log.reports(.lockdep).first?.lines else { return }
            #expect(lines.prefix(5) == [
                "", String(repeating: "=", count: 54), "WARNING: possible circular locking dependency detected",
                "irqemu #1 Not tainted", String(repeating: "-", count: 54),
            ])
            #expect(lines[5].hasPrefix("ld-ba/") && lines[5].hasSuffix(" is trying to acquire lock:"))
            #expect(lines[6].hasSuffix(" (test->a){+.+.}-{4:4}, at: KernelRuntimeTests/LockdepTests.swift:\(baLine)"))
            #expect(lines[8] == "but task is already holding lock:")
            #expect(lines[9].contains(" (test->b){+.+.}-{4:4}, at: KernelRuntimeTests/LockdepTests.swift:"))
            #expect(lines.contains("which lock already depends on the new lock."))
            // Both chains: #1, where a -> b was first seen (the other thread), and #0, now.
            let chain = lines.firstIndex(of: "the existing dependency chain (in reverse order) is:") ?? 0
            #expect(lines[chain + 2] == "-> #1 (test->b){+.+.}-{4:4}:")
            #expect(lines[chain + 3].hasPrefix("       KernelRuntimeTests/LockdepTests.swift:") && lines[chain + 3].contains(" by ld-ab/"))
            #expect(lines[chain + 5] == "-> #0 (test->a){+.+.}-{4:4}:")
            #expect(lines[chain + 6].contains(" by ld-ba/"))
            let scenario = lines.firstIndex(of: " Possible unsafe locking scenario:") ?? 0
            #expect(Array(lines[scenario..<(scenario + 11)]) == [
                " Possible unsafe locking scenario:", "",
                "       CPU0                    CPU1",
                "       ----                    ----",
                "  lock(test->b);",
                "                               lock(test->a);",
                "                               lock(test->b);",
                "  lock(test->a);", "",
                " *** DEADLOCK ***", "",
            ])
            #expect(lines[scenario + 11].hasPrefix("1 lock held by ld-ba/"))
            #expect(lines[scenario + 12].hasPrefix(" #0: ") && lines[scenario + 12].contains("(test->b)"))
            #expect(lines.contains("stack backtrace:"))
        }
    }

    @Test func abbaTwinInOneOrderIsSilent() {
        LockdepGate.run {
            let log = KernelLog(name: "ab-ab")
            let a = SleepingMutex(0)
            let b = SpinLock(0)
            run("ld-ab1", log) { try? a.withLock { _ in b.withLock { _ in } } }
            run("ld-ab2", log) { try? a.withLock { _ in b.withLock { _ in } } }
            run("ld-b", log) { b.withLock { _ in } }
            #expect(log.reports.isEmpty)
        }
    }

    /// A -> B -> C on one thread, then C -> A on another: a cycle of three, with the
    /// middle lock in the chain and the scenario.
    @Test func cycleOfThreeNamesTheChain() {
        LockdepGate.run {
            let log = KernelLog(name: "abc")
            let a = SleepingMutex(0, key: LockClassKey("cyc->a"))
            let b = SleepingMutex(0, key: LockClassKey("cyc->b"))
            let c = SleepingMutex(0, key: LockClassKey("cyc->c"))
            run("ld-abc", log) { try? a.withLock { _ in try? b.withLock { _ in try? c.withLock { _ in } } } }
            run("ld-ca", log) { try? c.withLock { _ in try? a.withLock { _ in } } }
            let lines = log.reports(.lockdep).first?.lines ?? []
            #expect(log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
            #expect(lines.contains("-> #2 (cyc->c){+.+.}-{4:4}:"))
            #expect(lines.contains("-> #1 (cyc->b){+.+.}-{4:4}:"))
            #expect(lines.contains("-> #0 (cyc->a){+.+.}-{4:4}:"))
            #expect(lines.contains("Chain exists of:"))
            #expect(lines.contains("  cyc->a --> cyc->b --> cyc->c"))
            #expect(lines.contains("                               lock(cyc->b);"))
        }
    }

    // MARK: - Recursive

    @Test func oneClassNestedWithoutSubclassIsRecursive() {
        LockdepGate.run {
            let log = KernelLog(name: "recursive")
            let (parent, child, line) = sameClassMutexes()
            run("ld-rec", log) { try? parent.withLock { _ in try? child.withLock { _ in } } }
            #expect(log.lockdepHeadlines == ["WARNING: possible recursive locking detected"])
            let lines = log.reports(.lockdep).first?.lines ?? []
            #expect(lines.prefix(2) == ["", String(repeating: "=", count: 44)])
            #expect(lines.contains(" May be due to missing lock nesting notation"))
            #expect(lines.contains("  lock(SleepingMutex@KernelRuntimeTests/LockdepTests.swift:\(line));"))
        }
    }

    @Test func oneClassNestedWithSubclassIsSilent() {
        LockdepGate.run {
            let log = KernelLog(name: "nested")
            let parent = SpinLock(0, key: LockClassKey("nest->lock"))
            let child = SpinLock(0, key: LockClassKey("nest->lock"))
            run("ld-nest", log) { parent.withLock { _ in child.withLockNested { _ in } } }
            run("ld-nest", log) { parent.withLock { _ in child.withLockNested(subclass: 1) { _ in } } }
            #expect(log.reports.isEmpty)
        }
    }

    // MARK: - IRQ usage

    @Test func spinlockInHandlerAndWithIRQsOnIsInconsistent() {
        LockdepGate.run {
            let log = KernelLog(name: "irq-unsafe")
            let lock = SpinLock(0, key: LockClassKey("dev->irq_lock"))
            run("ld-irq", log) { asHardIRQ { lock.withLock { $0 += 1 } } }
            run("ld-proc", log) { lock.withLock { $0 += 1 } }
            #expect(log.lockdepHeadlines == ["WARNING: inconsistent lock state"])
            let lines = log.reports(.lockdep).first?.lines ?? []
            #expect(lines.contains("inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage."))
            #expect(lines.contains { $0.hasPrefix("ld-proc/") && $0.hasSuffix(" [HC0[0]:SC0[0]:HE1:SE1] takes:") })
            #expect(lines.contains { $0.contains(" (dev->irq_lock){?.+.}-{3:3}, at: ") })
            #expect(lines.contains("{IN-HARDIRQ-W} state was registered at:"))
            #expect(lines.contains { $0.hasPrefix("  KernelRuntimeTests/LockdepTests.swift:") && $0.contains(" by ld-irq/") })
            #expect(lines.contains("  <Interrupt>"))
            #expect(lines.contains("    lock(dev->irq_lock);"))
        }
    }

    @Test func spinlockWithIRQsOnThenInHandlerIsInconsistentTheOtherWay() {
        LockdepGate.run {
            let log = KernelLog(name: "irq-unsafe-2")
            let lock = SpinLock(0, key: LockClassKey("dev->irq_lock2"))
            run("ld-proc", log) { lock.withLock { $0 += 1 } }
            run("ld-irq", log) { asHardIRQ { lock.withLock { $0 += 1 } } }
            #expect(log.lockdepHeadlines == ["WARNING: inconsistent lock state"])
            let lines = log.reports(.lockdep).first?.lines ?? []
            #expect(lines.contains("inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage."))
            #expect(lines.contains { $0.hasSuffix(" [HC1[1]:SC0[0]:HE0:SE1] takes:") })
        }
    }

    @Test func spinlockInSoftIRQAndWithSoftIRQsOnIsInconsistent() {
        LockdepGate.run {
            let log = KernelLog(name: "softirq-unsafe")
            let lock = SpinLock(0, key: LockClassKey("dev->soft_lock"))
            // A call_rcu callback runs in softirq context (on liburcu's thread).
            run("ld-rcu", log) {
                RCU.callAfterGracePeriod { KernelLog.withCurrent(log) { lock.withLock { $0 += 1 } } }
                try? RCU.barrier()
            }
            run("ld-proc", log) { lock.withLockIRQSave { $0 += 1 } }
            #expect(log.reports.isEmpty, "irqs off: softirqs cannot come in either")
            run("ld-proc", log) { lock.withLock { $0 += 1 } }
            let lines = log.reports(.lockdep).first?.lines ?? []
            #expect(lines.contains("inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage."))
        }
    }

    @Test func spinlockInHandlerAndIRQSaveElsewhereIsSilent() {
        LockdepGate.run {
            let log = KernelLog(name: "irq-safe")
            let lock = SpinLock(0)
            run("ld-irq", log) { asHardIRQ { lock.withLock { $0 += 1 } } }
            run("ld-proc", log) { lock.withLockIRQSave { $0 += 1 } }
            run("ld-irq", log) { asHardIRQ { lock.withLock { $0 += 1 } } }
            #expect(log.reports.isEmpty)
        }
    }

    /// An irq-safe lock (taken in a handler) held, with interrupts off, while taking one
    /// that is irq-unsafe (taken elsewhere with interrupts on).
    @Test func irqSafeLockTakingAnIRQUnsafeOneIsReported() {
        LockdepGate.run {
            let log = KernelLog(name: "safe-unsafe")
            let safe = SpinLock(0, key: LockClassKey("safe->lock"))
            let unsafeLock = SpinLock(0, key: LockClassKey("unsafe->lock"))
            run("ld-irq", log) { asHardIRQ { safe.withLock { _ in } } }
            run("ld-proc", log) { unsafeLock.withLock { _ in } }
            #expect(log.reports.isEmpty)
            run("ld-nest", log) { safe.withLockIRQSave { _ in unsafeLock.withLock { _ in } } }
            #expect(log.lockdepHeadlines == ["WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"])
            let lines = log.reports(.lockdep).first?.lines ?? []
            #expect(lines.prefix(2) == ["", String(repeating: "=", count: 53)])
            #expect(lines.contains { $0.hasPrefix("ld-nest/") && $0.hasSuffix(" [HC0[0]:SC0[0]:HE0:SE1] is trying to acquire:") })
            #expect(lines.contains("which would create a new lock dependency:"))
            #expect(lines.contains(" (safe->lock){-...}-{3:3} -> (unsafe->lock){+.+.}-{3:3}"))
            #expect(lines.contains("but this new dependency connects a HARDIRQ-irq-safe lock:"))
            #expect(lines.contains("to a HARDIRQ-irq-unsafe lock:"))
            #expect(lines.contains(" Possible interrupt unsafe locking scenario:"))
            #expect(lines.contains("                               local_irq_disable();"))
            #expect(lines.contains("the dependencies between HARDIRQ-irq-safe lock and the holding lock:"))
            #expect(lines.contains(" and HARDIRQ-irq-unsafe lock:"))
        }
    }

    /// The softirq form: a lock taken in a `call_rcu` callback, held (with interrupts off)
    /// while taking one that process context takes with softirqs on.
    @Test func softirqSafeLockTakingASoftirqUnsafeOneIsReported() {
        LockdepGate.run {
            let log = KernelLog(name: "soft-safe-unsafe")
            let safe = SpinLock(0, key: LockClassKey("soft-safe->lock"))
            let unsafeLock = SpinLock(0, key: LockClassKey("soft-unsafe->lock"))
            run("ld-rcu", log) {
                RCU.callAfterGracePeriod { KernelLog.withCurrent(log) { safe.withLockIRQSave { _ in } } }
                try? RCU.barrier()
            }
            run("ld-proc", log) { unsafeLock.withLock { _ in } }
            run("ld-nest", log) { safe.withLockIRQSave { _ in unsafeLock.withLock { _ in } } }
            #expect(log.lockdepHeadlines == ["WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"])
            let lines = log.reports(.lockdep).first?.lines ?? []
            #expect(lines.contains(" (soft-safe->lock){..-.}-{3:3} -> (soft-unsafe->lock){+.+.}-{3:3}"))
            #expect(lines.contains("... which became SOFTIRQ-irq-safe at:"))
        }
    }

    @Test func irqSafeLockTakingAnIRQSafeOneIsSilent() {
        LockdepGate.run {
            let log = KernelLog(name: "safe-safe")
            let outer = SpinLock(0)
            let inner = SpinLock(0)
            run("ld-irq", log) { asHardIRQ { outer.withLock { _ in inner.withLock { _ in } } } }
            run("ld-proc", log) { outer.withLockIRQSave { _ in inner.withLock { _ in } } }
            run("ld-proc", log) { inner.withLockIRQSave { _ in } }
            #expect(log.reports.isEmpty)
        }
    }

    /// The same bug found the other way round: the dependency first, the irq usage after.
    @Test func irqInversionIsFoundWhenTheUsageChangesLast() {
        LockdepGate.run {
            let log = KernelLog(name: "inversion")
            let safe = SpinLock(0, key: LockClassKey("inv->safe"))
            let later = SpinLock(0, key: LockClassKey("inv->later"))
            run("ld-irq", log) { asHardIRQ { safe.withLock { _ in } } }
            run("ld-nest", log) { safe.withLockIRQSave { _ in later.withLock { _ in } } }
            #expect(log.reports.isEmpty)
            run("ld-proc", log) { later.withLock { _ in } }
            #expect(log.lockdepHeadlines == ["WARNING: possible irq lock inversion dependency detected"])
            let lines = log.reports(.lockdep).first?.lines ?? []
            #expect(lines.contains { $0.hasPrefix("ld-proc/") && $0.hasSuffix(" just changed the state of lock:") })
            #expect(lines.contains("but this lock was taken by another, HARDIRQ-safe lock in the past:"))
            #expect(lines.contains(" (inv->safe){-...}-{3:3}"))
            #expect(lines.contains("and interrupts could create inverse lock ordering between them."))
            #expect(lines.contains("the shortest dependencies between 2nd lock and 1st lock:"))
        }
    }

    // MARK: - API

    @Test func assertHeldWarnsOnlyWhenNotHeld() {
        LockdepGate.run {
            let log = KernelLog(name: "assert")
            let lock = SleepingMutex(0)
            run("ld-assert", log) {
                try? lock.withLock { _ in Lockdep.assertHeld(lock) }
                Lockdep.assertNotHeld(lock)
            }
            #expect(log.reports.isEmpty)
            run("ld-assert", log) {
                for _ in 0..<3 { Lockdep.assertHeld(lock) }  // one site: warned once
            }
            #expect(log.lockdepHeadlines.count == 1)
            #expect(log.lockdepHeadlines.first?.hasPrefix("WARNING: CPU: 0 PID: ") == true)
            #expect(log.lockdepHeadlines.first?.hasSuffix(" Lockdep.assertHeld(_:)") == true)
            #expect(run("ld-held", log) { try? lock.withLock { _ in Lockdep.isHeld(lock) } } == true)
            #expect(run("ld-held", log) { Lockdep.isHeld(lock) } == false)
        }
    }

    /// `mightLock` records the dependency of a path that takes the lock only sometimes.
    @Test func mightLockRecordsTheDependency() {
        LockdepGate.run {
            let log = KernelLog(name: "might")
            let a = SleepingMutex(0, key: LockClassKey("might->a"))
            let b = SleepingMutex(0, key: LockClassKey("might->b"))
            run("ld-might", log) { try? a.withLock { _ in Lockdep.mightLock(b) } }
            #expect(log.reports.isEmpty)
            run("ld-ba", log) { try? b.withLock { _ in try? a.withLock { _ in } } }
            #expect(log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
        }
    }

    /// Guards released out of order: releasing the middle of A, B, C leaves A and C held
    /// (and records A -> C, as the kernel's re-acquisition does), never a stale B.
    @Test func outOfOrderReleaseKeepsTheRightLocksHeld() {
        LockdepGate.run {
            let log = KernelLog(name: "out-of-order")
            let a = LockdepMap(key: LockClassKey("ooo->a"), type: .mutex)
            let b = LockdepMap(key: LockClassKey("ooo->b"), type: .mutex)
            let c = LockdepMap(key: LockClassKey("ooo->c"), type: .mutex)
            let held = run("ld-ooo", log) { () -> [Bool] in
                Lockdep.acquire(a, function: "test", file: #fileID, line: #line)
                Lockdep.acquire(b, function: "test", file: #fileID, line: #line)
                Lockdep.acquire(c, function: "test", file: #fileID, line: #line)
                Lockdep.release(b)
                let middle = [Lockdep.holds(a), Lockdep.holds(b), Lockdep.holds(c)]
                Lockdep.release(a)
                Lockdep.release(c)
                return middle + [Lockdep.holds(a), Lockdep.holds(c)] + [Lockdep.heldLockNames.isEmpty]
            }
            #expect(held == [true, false, true, false, false, true])
            #expect(log.reports.isEmpty)
            // A -> C was recorded when C was taken again under A alone.
            run("ld-ca", log) {
                Lockdep.acquire(c, function: "test", file: #fileID, line: #line)
                Lockdep.acquire(a, function: "test", file: #fileID, line: #line)
                Lockdep.release(a)
                Lockdep.release(c)
            }
            #expect(log.lockdepHeadlines == ["WARNING: possible circular locking dependency detected"])
        }
    }

    /// A report obeys the log's panic switch only through `KernelLog`; here, that reports
    /// go to the log given to the acquisition rather than the one in scope.
    @Test func reportsGoToTheLogInScope() {
        LockdepGate.run {
            let first = KernelLog(name: "scope-1")
            let second = KernelLog(name: "scope-2")
            let a = SleepingMutex(0)
            let b = SleepingMutex(0)
            run("ld-1", first) { try? a.withLock { _ in try? b.withLock { _ in } } }
            run("ld-2", second) { try? b.withLock { _ in try? a.withLock { _ in } } }
            #expect(first.reports.isEmpty)
            #expect(second.reportCount(.lockdep) == 1)
        }
    }
}
