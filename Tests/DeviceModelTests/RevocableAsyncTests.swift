import DeviceModel
import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

/// The async `Revocable.revoke()`: the blocking revoke's guarantees, with no thread of the
/// concurrency pool waiting; and the guard-form access, refused in a task.
@Suite(.timeLimit(.minutes(2)))
struct RevocableAsyncTests {
    /// Readers on two threads read while a task revokes: the value is dropped exactly once,
    /// no read that starts after the await returned gets it, and no read sees it dropped.
    @Test(arguments: RevocationStrategy.allCases)
    func anAsyncRevokeDropsOnceAndNothingReadsItAfter(strategy: RevocationStrategy) async throws {
        let counter = Counted.Counter()
        let rounds = Scale.iterations(100, tsan: 10)
        let current = Box<Revocable<Counted>?>(nil)
        let returned = Box<Int>(-1)  // the round whose revoke has returned
        let stop = Flag()
        let deadReads = AtomicCounter(), lateReads = AtomicCounter(), reads = AtomicCounter()
        let readers = try (0..<2).map { i in
            try KThread(name: "reader\(i)") {
                while !stop.isSet {
                    guard let r = current.get() else { continue }
                    let round = r.tryAccess { $0.id } ?? -1
                    let returnedBefore = returned.get()
                    // Read again after noting which revokes had returned: a value read now
                    // must not be one whose revoke had returned.
                    if let id = r.tryAccess({ value -> Int in
                        if !value.isAlive { deadReads.increment() }
                        return value.id
                    }) {
                        reads.increment()
                        if id <= returnedBefore { lateReads.increment() }
                    }
                    _ = round
                }
            }
        }
        for round in 0..<rounds {
            let r = Revocable(Counted(round, counter: counter), strategy: strategy)
            current.set(r)
            try await Task.sleep(for: .microseconds(200))
            let revoked = try await r.revoke()
            returned.set(round)
            #expect(revoked)
            #expect(counter.droppedCount == round + 1, "the value was not dropped when the await returned")
            #expect(r.tryAccess { $0.id } == nil)
        }
        stop.set()
        for reader in readers { try await reader.join() }
        #expect(counter.createdCount == rounds && counter.droppedCount == rounds)
        #expect(deadReads.value == 0, "a reader saw a dropped value")
        #expect(lateReads.value == 0, "a read that began after the revoke returned got the value")
        #expect(reads.value > 0)
    }

    /// Concurrent async revokes of one Revocable: one winner, and every call returns only
    /// once the value is dropped.
    @Test(arguments: RevocationStrategy.allCases)
    func concurrentRevokesHaveOneWinnerAndAllReturnAfterTheDrop(strategy: RevocationStrategy) async throws {
        let counter = Counted.Counter()
        for _ in 0..<Scale.iterations(50, tsan: 5) {
            let r = Revocable(Counted(counter: counter), strategy: strategy)
            let dropped = counter.droppedCount
            let results = try await withThrowingTaskGroup(of: (Bool, Int).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let won = try await r.revoke()
                        return (won, counter.droppedCount)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter(\.0).count == 1, "exactly one winner")
            #expect(results.allSatisfy { $0.1 == dropped + 1 }, "a revoke returned before the value was dropped")
        }
    }

    /// A blocking revoke on a thread and async ones in tasks: still one winner.
    @Test func blockingAndAsyncRevokesOfOneRevocableShareOneWinner() async throws {
        let counter = Counted.Counter()
        let r = Revocable(Counted(counter: counter))
        let blocking = Box<Bool?>(nil)
        let thread = try KThread(name: "blocking-revoke") { blocking.set(try? r.revoke()) }
        async let a = r.revoke()
        async let b = r.revoke()
        let asyncWins = [try await a, try await b].filter { $0 }.count
        try await thread.join()
        #expect(asyncWins + (blocking.get() == true ? 1 : 0) == 1)
        #expect(counter.droppedCount == 1)
    }

    /// A mutex revoke waits, on a runtime thread, for the reader that holds the lock.
    @Test func aMutexRevokeWaitsForTheReaderHoldingTheLock() async throws {
        let counter = Counted.Counter()
        let r = Revocable(Counted(counter: counter), strategy: .mutex)
        let gate = Gate("mutex reader")
        let reader = try KThread(name: "mutex-reader") { _ = r.tryAccess { _ in gate.pass() } }
        #expect(await gate.reached())
        let opener = try gate.open(after: .milliseconds(50))
        let revoke = Task { try await r.revoke() }
        #expect(await eventually { r.isRevoked }, "the winner was decided, and readers kept off, on the calling task")
        #expect(try await revoke.value)
        #expect(gate.passed == 1, "the revoke returned while a reader held the lock")
        #expect(counter.droppedCount == 1)
        try await opener.join()
        try await reader.join()
    }

    /// A cancelled task's revoke still waits for the drop and returns normally.
    @Test(arguments: RevocationStrategy.allCases)
    func aCancelledRevokeStillDropsAndReturns(strategy: RevocationStrategy) async throws {
        let counter = Counted.Counter()
        let r = Revocable(Counted(counter: counter), strategy: strategy)
        // The reader lets go by itself: a read-side section must not wait for a task.
        let gate = Gate("reader", holdAtMost: .milliseconds(30))
        let reader = try KThread(name: "held-reader") {
            if strategy == .rcu { RCU.read { gate.pass() } } else { _ = r.tryAccess { _ in gate.pass() } }
        }
        #expect(await gate.reached())
        let revoke = Task { (try await r.revoke(), gate.passed == 1) }
        revoke.cancel()
        let (won, openWhenReturned) = try await revoke.value
        #expect(won, "the cancelled revoke returned normally, as the winner")
        #expect(openWhenReturned, "it returned while the reader held the value")
        #expect(counter.droppedCount == 1)
        try await reader.join()
    }

    /// The value's deinit runs on a runtime worker thread, in process context, never in a
    /// task on the concurrency pool (nor in a call_rcu callback).
    @Test(arguments: RevocationStrategy.allCases)
    func theValueIsDroppedOnARuntimeThread(strategy: RevocationStrategy) async throws {
        let seen = Box<(thread: String, inTask: Bool, atomic: Bool)?>(nil)
        let counter = Counted.Counter()
        let r = Revocable(
            Counted(counter: counter) { _ in
                seen.set((KThread.currentName, TaskContext.isInTask, AtomicContext.isAtomic))
            }, strategy: strategy)
        #expect(try await r.revoke())
        let where_ = try #require(seen.get())
        #expect(where_.thread.hasPrefix("irqemu-async"), "dropped on \(where_.thread)")
        #expect(!where_.inTask)
        #expect(!where_.atomic)
    }

    /// The guard form is refused in a task, reported, for both strategies; the closure form
    /// works there.
    @Test(arguments: RevocationStrategy.allCases)
    func aGuardFormAccessInATaskIsRefused(strategy: RevocationStrategy) async throws {
        let log = KernelLog(name: "task")
        let r = Revocable(5, strategy: strategy)
        let refused = KernelLog.withCurrent(log) { r.tryAccess() == nil }
        #expect(refused)
        #expect(log.reports.count == 1)
        let headline = log.reports.first?.headline ?? ""
        #expect(headline.hasPrefix("BUG: irqemu:") && headline.contains("section started in a task"), "\(headline)")
        #expect(r.tryAccess { $0 } == 5, "the closure form works in a task")
        #expect(!r.isRevoked)
    }
}
