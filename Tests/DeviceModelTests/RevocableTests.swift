import DeviceModel
import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(3)))
struct RevocableTests {
    /// Readers hammer the value while two threads race to revoke it. Each access lasts
    /// ~20 µs and checks, at its END, that no revoke has returned and the value has not
    /// been dropped (a flag set by its deinit: the value itself is never read after a
    /// drop), so a revoke that does not wait for readers is caught in the access it cut
    /// short. The winning revoke checks, once it has returned, that no reader is inside.
    /// Revokers start only after the readers have made a few reads (deadline-bounded), so
    /// every round overlaps. Exactly one revoke wins; the value is dropped once, by it.
    @Test(arguments: RevocationStrategy.allCases)
    func noAccessAfterAWinningRevokeReturns(strategy: RevocationStrategy) {
        let rounds = Scale.iterations(300, tsan: 30)
        let readsBeforeRevoke = 4
        let counter = Counted.Counter()
        let lateReads = Atomic<Int>(0)       // an access still running when a revoke had returned
        let deadReads = Atomic<Int>(0)       // an access still running when the value was dropped
        let insideAtReturn = Atomic<Int>(0)  // the winning revoke returned with a reader inside
        let readAfterRevoke = Atomic<Int>(0) // a read that got the value after revoke returned
        let starved = Atomic<Int>(0)         // rounds whose revokers did not see the reads in time
        let winners = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        var droppedByRound: [Int] = []
        for round in 0..<rounds {
            let dropped = Atomic<Bool>(false)
            let revocable = Revocable(
                Counted(round, counter: counter) { _ in dropped.store(true, ordering: .sequentiallyConsistent) },
                strategy: strategy)
            let revokedReturned = Atomic<Bool>(false)
            let inside = Atomic<Int>(0)
            let roundReads = Atomic<Int>(0)
            Threads.run(4, name: "rev") { index in
                if index < 2 {
                    // Two revokers race once the readers are in: exactly one wins.
                    let deadline = Deadline.after(.seconds(10))
                    while roundReads.load(ordering: .acquiring) < readsBeforeRevoke && !deadline.hasPassed { usleep(20) }
                    if roundReads.load(ordering: .acquiring) < readsBeforeRevoke { starved.add(1, ordering: .relaxed) }
                    if (try? revocable.revoke()) == true {
                        revokedReturned.store(true, ordering: .sequentiallyConsistent)
                        if inside.load(ordering: .sequentiallyConsistent) != 0 { insideAtReturn.add(1, ordering: .relaxed) }
                        winners.add(1, ordering: .relaxed)
                    }
                } else {
                    var n = 0
                    let deadline = Deadline.after(.seconds(20))
                    while !deadline.hasPassed {
                        let outcome = revocable.tryAccess { _ -> (late: Bool, dead: Bool) in
                            inside.add(1, ordering: .sequentiallyConsistent)
                            roundReads.add(1, ordering: .releasing)
                            let end = monotonicNanoseconds() + 20_000
                            while monotonicNanoseconds() < end {}
                            let late = revokedReturned.load(ordering: .sequentiallyConsistent)
                            let dead = dropped.load(ordering: .sequentiallyConsistent)
                            inside.subtract(1, ordering: .sequentiallyConsistent)
                            return (late, dead)
                        }
                        guard let outcome else { break }
                        if outcome.late { lateReads.add(1, ordering: .relaxed) }
                        if outcome.dead { deadReads.add(1, ordering: .relaxed) }
                        n += 1
                    }
                    reads.add(n, ordering: .relaxed)
                    // Once revoked, it stays revoked.
                    if revocable.tryAccess({ _ in true }) != nil { readAfterRevoke.add(1, ordering: .relaxed) }
                }
            }
            droppedByRound.append(counter.droppedCount - round)
        }
        #expect(lateReads.load(ordering: .relaxed) == 0, "an access was still running after a revoke returned")
        #expect(deadReads.load(ordering: .relaxed) == 0, "an access was still running when the value was dropped")
        #expect(insideAtReturn.load(ordering: .relaxed) == 0, "the winning revoke returned before the reader let go")
        #expect(readAfterRevoke.load(ordering: .relaxed) == 0, "a read got the value after the revoke")
        #expect(winners.load(ordering: .relaxed) == rounds, "exactly one winner per round")
        #expect(starved.load(ordering: .relaxed) == 0, "the readers did not start within 10 s")
        #expect(reads.load(ordering: .relaxed) >= rounds * readsBeforeRevoke, "every round's revoke overlapped reads")
        #expect(droppedByRound.allSatisfy { $0 == 1 }, "dropped by the winning revoke, before it returned")
        #expect(counter.live == 0)
    }

    /// With the mutex strategy, revoking or reading a Revocable inside its own access would
    /// relock the held mutex: reported as lockdep's recursive locking and refused, never a
    /// hang; the value is untouched and the outer access goes on.
    @Test func mutexRelockInsideItsOwnAccessIsRefused() {
        let log = KernelLog(name: "relock")
        let result = Threads.onThread(timeout: .seconds(20)) { () -> [Bool] in
            let counter = Counted.Counter()
            let revocable = Revocable(Counted(7, counter: counter), strategy: .mutex)
            let inner = KernelLog.withCurrent(log) {
                revocable.tryAccess { value -> [Bool] in
                    let revokeRefused = caught(AtomicContextViolation.self) { _ = try revocable.revoke() } != nil
                    let nestedRefused = revocable.tryAccess { _ in true } == nil
                    return [revokeRefused, nestedRefused, value.isAlive]
                }
            } ?? []
            let revokedAfter = (try? revocable.revoke()) == true
            return inner + [revokedAfter, counter.droppedCount == 1]
        }
        #expect(result == [true, true, true, true, true])
        // One report per refusal, in lockdep's words, and nothing else.
        #expect(log.reports.map(\.headline) == Array(repeating: "WARNING: possible recursive locking detected", count: 2))
        #expect(log.reports.allSatisfy { $0.kind == .lockdep })
    }

    /// With the mutex strategy `revokeNoSync()` is `revoke()`: inside the Revocable's own
    /// access it would relock the held mutex, so it is reported and refused (false) as
    /// `revoke()` is, never a hang; the value is untouched and can be revoked afterwards.
    @Test func mutexRevokeNoSyncInsideItsOwnAccessIsRefused() {
        let log = KernelLog(name: "relock-nosync")
        let result = Threads.onThread(timeout: .seconds(10)) { () -> [Bool] in
            let counter = Counted.Counter()
            let revocable = Revocable(Counted(7, counter: counter), strategy: .mutex)
            let inner = KernelLog.withCurrent(log) {
                revocable.tryAccess { value -> [Bool] in [unsafe !revocable.revokeNoSync(), value.isAlive] }
            } ?? []
            let revokedAfter = unsafe revocable.revokeNoSync()
            return inner + [revokedAfter, counter.droppedCount == 1]
        }
        #expect(result == [true, true, true, true])
        #expect(log.reports.map(\.headline) == ["WARNING: possible recursive locking detected"])
        #expect(log.reports.first?.kind == .lockdep)
    }

    /// A mutex Devres' device unbound from inside that Devres' access: the release would
    /// relock the held mutex. Reported; unbind returns; the value is revoked by the reaper
    /// once the access ends, exactly once.
    @Test func unbindInsideAMutexDevresAccessDoesNotHang() throws {
        let counter = Counted.Counter()
        let device = Device(name: "relock-unbind")
        let handles = Handles<Counted>()
        let result = try Threads.onThread(timeout: .seconds(20)) { () -> Bool in
            try device.bind(ClosureDriver(probe: { bound in
                handles.append(try Devres(bound, Counted(1, counter: counter), strategy: .mutex))
            }))
            let devres = handles.take()[0]
            let unbound = devres.tryAccess { _ in (try? device.unbind()) != nil } ?? false
            let flushed = (try? Reaper.shared.flush(timeout: .seconds(10))) != nil
            return unbound && flushed && devres.tryAccess({ _ in true }) == nil
        }
        #expect(result == true)
        #expect(counter.droppedCount == 1)
        #expect(device.log.reports(.lockdep).map(\.headline) == ["WARNING: possible recursive locking detected"])
    }

    @Test(arguments: RevocationStrategy.allCases)
    func droppingAnUnrevokedRevocableDropsTheValueOnce(strategy: RevocationStrategy) throws {
        let counter = Counted.Counter()
        do {
            let r = Revocable(Counted(counter: counter), strategy: strategy)
            #expect(r.tryAccess { $0.isAlive } == true)
        }
        #expect(counter.droppedCount == 1)
        do {
            let r = Revocable(Counted(counter: counter), strategy: strategy)
            #expect(try Threads.onThread { try r.revoke() } == true)
            #expect(counter.droppedCount == 2)
            #expect(try Threads.onThread { try r.revoke() } == false, "a second revoke returns false")
        }
        #expect(counter.droppedCount == 2)
    }

    /// The value lives inline in the Revocable, reached through its Optional's payload:
    /// values whose Optional takes a tag byte, or uses spare bits, or nests, are read and
    /// dropped exactly once on every path (revoke, revokeNoSync, deinit).
    @Test(arguments: RevocationStrategy.allCases)
    func valuesOfEveryLayoutAreReadAndDroppedOnce(strategy: RevocationStrategy) throws {
        struct Wide: Sendable {
            let counted: Counted
            let n: Int
            let flag: Bool
        }
        let counter = Counted.Counter()
        try Threads.onThread { () throws(AtomicContextViolation) in
            for path in 0..<3 {
                let wide = Revocable(Wide(counted: Counted(7, counter: counter), n: 42, flag: true), strategy: strategy)
                let nested = Revocable<Counted?>(Counted(8, counter: counter), strategy: strategy)
                let none = Revocable<Counted?>(nil, strategy: strategy)
                let int = Revocable(Int.min, strategy: strategy)
                #expect(wide.tryAccess { ($0.counted.id, $0.n, $0.flag, $0.counted.isAlive) }! == (7, 42, true, true))
                #expect(nested.tryAccess { $0?.id } == .some(8))
                #expect(none.tryAccess { $0 == nil } == true)
                #expect(int.tryAccess { $0 } == Int.min)
                switch path {
                case 0:
                    let revoked = try [wide.revoke(), nested.revoke(), none.revoke(), int.revoke()]
                    #expect(revoked == [true, true, true, true])
                    #expect(counter.droppedCount == 2 * (path + 1))
                case 1:
                    let revoked = unsafe [wide.revokeNoSync(), nested.revokeNoSync(), none.revokeNoSync(), int.revokeNoSync()]
                    #expect(revoked == [true, true, true, true])
                    #expect(counter.droppedCount == 2 * (path + 1))
                default:
                    break  // dropped by the Revocables' deinit below
                }
                #expect(wide.tryAccess { _ in 1 } == (path == 2 ? 1 : nil))
            }
        }
        #expect(counter.createdCount == 6)
        #expect(counter.droppedCount == 6)
    }

    @Test func revokeNoSyncDropsAtOnce() {
        let counter = Counted.Counter()
        let r = Revocable(Counted(counter: counter))
        #expect(unsafe r.revokeNoSync())
        #expect(counter.droppedCount == 1)
        #expect(unsafe !r.revokeNoSync())
        #expect(r.tryAccess { _ in 1 } == nil)
    }

    @Test func guardFormHoldsTheReadLockOrTheMutex() {
        let result = Threads.onThread { () -> [Int] in
            let rcu = Revocable(7)
            let mutex = Revocable(8, strategy: .mutex)
            var out: [Int] = []
            if let g = rcu.tryAccess() {
                out.append(g.value)
                out.append(RCU.readDepth)
            }
            out.append(RCU.readDepth)
            if let g = mutex.tryAccess() {
                out.append(g.value)
            }
            // The guard released the mutex: a revoke can take it.
            out.append((try? mutex.revoke()) == true ? 1 : 0)
            return out
        }
        #expect(result == [7, 1, 0, 8, 1])
    }

    /// A guard holding the last reference to its Revocable lets go of it only after its
    /// read-side section (or mutex) is released: the value's deinit runs in process context,
    /// where it may sleep (here, wait for a grace period), not inside the guard's section,
    /// where that would be reported and refused.
    @Test(arguments: RevocationStrategy.allCases)
    func valueDroppedWithItsGuardIsDroppedOutsideTheGuardsSection(strategy: RevocationStrategy) throws {
        final class Probe: Sendable {
            let seen: Box<[Bool]>
            init(_ seen: Box<[Bool]>) { self.seen = seen }
            deinit { seen.set([RCU.isReadLocked, (try? RCU.synchronize()) != nil]) }
        }
        let seen = Box<[Bool]>([])
        let log = KernelLog(name: "t")
        let readDepth = try #require(Threads.onThread(timeout: .seconds(10)) { () -> Int in
            KernelLog.withCurrent(log) {
                func guardHoldingTheOnlyReference() -> RevocableGuard<Probe>? {
                    Revocable(Probe(seen), strategy: strategy).tryAccess()
                }
                if let g = guardHoldingTheOnlyReference() { _ = g.value }  // the guard goes here
                return RCU.readDepth
            }
        })
        #expect(readDepth == 0)
        #expect(seen.get() == [false, true], "[in a read-side section, grace period waited] in the value's deinit")
        #expect(log.reports.isEmpty)
    }

    @Test func tryAccessUnderAnExistingGuard() {
        let result = Threads.onThread { () -> [Int?] in
            let rcu = Revocable(1)
            let mutex = Revocable(2, strategy: .mutex)
            let log = KernelLog(name: "t")
            return KernelLog.withCurrent(log) {
                let held = try! RCUReadGuard()
                let a = rcu.tryAccess(under: held) { $0 }
                let b = mutex.tryAccess(under: held) { $0 }  // a mutex inside a read section: refused
                _ = consume held
                return [a, b, log.reports.count]
            }
        }
        #expect(result == [1, nil, 1])
    }

    /// The mutex strategy cannot be read in atomic context (a mutex may sleep): reported,
    /// refused, and the value is still there afterwards.
    @Test func mutexAccessInAtomicContextIsRefused() {
        let log = KernelLog(name: "t")
        let result = Threads.onThread { () -> [Int?] in
            let r = Revocable(5, strategy: .mutex)
            return KernelLog.withCurrent(log) {
                let spin = SpinLock(())
                let insideSpin = spin.withLock { _ in r.tryAccess { $0 } }
                let insideRead = RCU.read { r.tryAccess { $0 } }
                return [insideSpin, insideRead, r.tryAccess { $0 }]
            }
        }
        #expect(result == [nil, nil, 5])
        #expect(log.reports(.sleepInAtomic).count == 2)
        #expect(log.reports.allSatisfy {
            $0.headline.hasPrefix("BUG: sleeping function called from invalid context at DeviceModelTests/RevocableTests.swift:")
        })
    }

    @Test(arguments: RevocationStrategy.allCases, ["read section", "spinlock"])
    func revokeInAtomicContextIsRefusedAndChangesNothing(strategy: RevocationStrategy, context: String) throws {
        let log = KernelLog(name: "t")
        let counter = Counted.Counter()
        let r = Revocable(Counted(counter: counter), strategy: strategy)
        let spin = SpinLock(())
        let refused = Threads.onThread { () -> Bool in
            KernelLog.withCurrent(log) {
                context == "spinlock"
                    ? spin.withLock { _ in (try? r.revoke()) == nil }
                    : RCU.read { (try? r.revoke()) == nil }
            }
        }
        #expect(refused == true)
        #expect(!r.isRevoked)
        #expect(counter.droppedCount == 0)
        #expect(log.reports.first?.headline.hasPrefix("BUG: sleeping function called from invalid context at DeviceModelTests/RevocableTests.swift:") == true)
        #expect(try Threads.onThread { try r.revoke() } == true)
        #expect(counter.droppedCount == 1)
    }

    /// Every losing `revoke()` returns only once the winner has finished dropping the value
    /// (upstream's "fix race between concurrent revokers", June 2026): the value's deinit
    /// takes 50 ms, and a loser never returns before it ended. Losers start while the winner
    /// drops, and (racing) together with it.
    @Test(arguments: RevocationStrategy.allCases, [false, true])
    func losingRevokeWaitsUntilTheWinnerHasDroppedTheValue(strategy: RevocationStrategy, together: Bool) {
        let rounds = Scale.iterations(20, tsan: 4)
        for round in 0..<rounds {
            let dropping = Completion()
            let droppedAt = Box<UInt64>(0)
            let counter = Counted.Counter()
            let r = Revocable(SlowDrop(counter: counter, started: dropping, droppedAt: droppedAt), strategy: strategy)
            let returnedAt = Box<[UInt64]>([])
            let results = Box<[Bool]>([])
            Threads.run(3, name: "revoke", timeout: .seconds(30)) { index in
                if !together && index > 0 { _ = try? dropping.wait(timeout: .seconds(10)) }
                let won = (try? r.revoke()) == true
                let now = monotonicNanoseconds()
                returnedAt.update { $0.append(now) }
                results.update { $0.append(won) }
            }
            let dropped = droppedAt.get()
            #expect(results.get().filter { $0 }.count == 1, "round \(round): exactly one winner")
            #expect(counter.droppedCount == 1)
            #expect(dropped != 0 && returnedAt.get().allSatisfy { $0 >= dropped },
                    "round \(round): a revoke returned before the value's deinit ended")
        }
    }

    /// A loser on the winner's own thread (the value's deinit revokes its own Revocable)
    /// cannot wait for itself: it returns false at once and says why.
    @Test(arguments: RevocationStrategy.allCases)
    func aRevokeFromTheValuesOwnDropReturnsAtOnceAndIsReported(strategy: RevocationStrategy) {
        let log = KernelLog(name: "self-revoke")
        let inner = Box<Bool?>(nil)
        let finished = Threads.onThread(timeout: .seconds(20)) { () -> Bool in
            KernelLog.withCurrent(log) {
                let slot = Box<Revocable<SelfRevoking>?>(nil)
                let r = Revocable(SelfRevoking(slot: slot, result: inner), strategy: strategy)
                slot.set(r)
                let won = (try? r.revoke()) == true
                slot.set(nil)
                return won
            }
        }
        #expect(finished == true, "the outer revoke won and returned")
        #expect(inner.get() == false, "the revoke from the deinit lost and returned")
        #expect(log.reports.map(\.headline) == [
            "WARNING: Revocable<SelfRevoking>.revoke() from the drop of its own value would wait for itself; not waiting"
        ])
    }
}

/// A value whose deinit takes 50 ms, marking when it started and when it ended.
final class SlowDrop: Sendable {
    let counted: Counted
    let started: Completion
    let droppedAt: Box<UInt64>
    init(counter: Counted.Counter, started: Completion, droppedAt: Box<UInt64>) {
        counted = Counted(counter: counter)
        self.started = started
        self.droppedAt = droppedAt
    }
    deinit {
        started.completeAll()
        usleep(50_000)
        droppedAt.set(monotonicNanoseconds())
    }
}

/// A value whose deinit revokes the Revocable that holds it.
final class SelfRevoking: Sendable {
    let slot: Box<Revocable<SelfRevoking>?>
    let result: Box<Bool?>
    init(slot: Box<Revocable<SelfRevoking>?>, result: Box<Bool?>) {
        self.slot = slot
        self.result = result
    }
    deinit {
        if let r = slot.get() { result.set((try? r.revoke()) == true) }
    }
}

@Suite struct HeldLockRecordTests {
    /// Guards released out of order (a's first) leave no stale record of a's mutex: a
    /// later revokeNoSync of a, not inside its access, is not refused as recursive locking
    /// (found in review; the records were popped by count).
    /// (The lock validator sees a then b, then a taken under b: an AB-BA order, reported.)
    @Test func guardsReleasedOutOfOrderLeaveNoStaleHeldLock() {
        LockdepGate.run {
            let log = KernelLog(name: "out-of-order")
            // On a thread: in a task the guard form is refused.
            let revoked = Threads.onThread { () -> Bool in
                KernelLog.withCurrent(log) { () -> Bool in
                    let a = Revocable(1, strategy: .mutex)
                    let b = Revocable(2, strategy: .mutex)
                    let g1 = a.tryAccess()
                    let g2 = b.tryAccess()
                    _ = consume g1
                    let revoked = unsafe a.revokeNoSync()
                    _ = consume g2
                    return revoked
                }
            }
            #expect(revoked == true, "legitimate revokeNoSync (a's mutex not held) refused")
            #expect(log.reports.map(\.headline) == ["WARNING: possible circular locking dependency detected"])
        }
    }
}
