import Foundation
import KernelRuntime
import RCU
import Synchronization
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(2)))
struct RCUTests {
    @Test func readSectionsNest() {
        let depths = Threads.onThread { () -> [Int] in
            var seen = [RCU.readDepth]
            RCU.read {
                seen.append(RCU.readDepth)
                RCU.read { seen.append(RCU.readDepth) }
                seen.append(RCU.readDepth)
            }
            seen.append(RCU.readDepth)
            return seen
        }
        #expect(depths == [0, 1, 2, 1, 0])
    }

    /// A plain pthread (not a KThread, which registers before its body) is unregistered
    /// until its first read lock.
    @Test func firstReadLockRegistersTheThread() {
        let states = Box<[Bool]>([])
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let before = RCUThread.isRegistered
            RCU.read {}
            states.set([before, RCUThread.isRegistered])
            done.signal()
        }
        thread.start()
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(states.get() == [false, true])
    }

    /// A registered thread is unregistered when it exits, exactly once: threads that
    /// registered on their first read lock, by hand, or registered again after unregistering
    /// by hand (liburcu aborts the process on a second unregistration). A thread that
    /// unregistered by hand and exits is not unregistered again.
    @Test func threadsAreUnregisteredAtExit() {
        let before = RCUThread.unregisteredAtExit.load(ordering: .relaxed)
        let threads = (0..<8).map { i in
            try! KThread(name: "exiting-\(i)") {
                switch i % 4 {
                case 0: RCU.read {}
                case 1: RCUThread.register()
                case 2: RCUThread.unregister(); RCUThread.register(); RCU.read {}
                default: RCUThread.unregister()
                }
            }
        }
        #expect(threads.allSatisfy { ((try? $0.join(timeout: .seconds(30))) != nil) })  // pthread_join: exit destructors have run
        let unregistered = RCUThread.unregisteredAtExit.load(ordering: .relaxed) - before
        // Other tests' threads exit meanwhile too: at least these six, every one of them.
        #expect(unregistered >= 6)
    }

    /// liburcu registers its call_rcu thread itself: a read lock in a callback must adopt
    /// that registration, not register a second time (liburcu aborts on that).
    @Test func readLockInACallbackUsesLiburcusRegistration() {
        let read = Atomic<Int>(0)
        for _ in 0..<3 {
            RCU.callAfterGracePeriod {
                RCU.read { _ = read.add(RCUThread.isRegistered ? 1 : 0, ordering: .relaxed) }
            }
        }
        _ = Threads.onThread { try? RCU.barrier() }
        #expect(read.load(ordering: .relaxed) == 3)
    }

    @Test func doubleRegistrationAndUnregistrationAreHarmless() {
        let ok = Threads.onThread { () -> Bool in
            RCUThread.register()
            RCUThread.register()
            RCU.read {}
            RCUThread.unregister()
            RCUThread.unregister()
            let unregistered = !RCUThread.isRegistered
            RCUThread.register()
            RCU.read {}
            return unregistered && RCUThread.isRegistered
        }
        #expect(ok == true)
    }

    /// `synchronize()` must not return while a reader that began before it is inside its
    /// section. The reader holds the section for 50 ms and marks the moment it leaves.
    @Test(arguments: 0..<5)
    func synchronizeWaitsForPreexistingReaders(round: Int) throws {
        let inSection = DispatchSemaphore(value: 0)
        let leftAt = Atomic<UInt64>(0)
        let reader = try! KThread(name: "reader") {
            RCU.read {
                inSection.signal()
                usleep(50_000)
                leftAt.store(monotonicNanoseconds(), ordering: .releasing)
            }
        }
        #expect(inSection.wait(timeout: .now() + 30) == .success)
        let returned = try Threads.onThread { () -> UInt64 in
            try RCU.synchronize()
            return monotonicNanoseconds()
        }
        #expect((try? reader.join(timeout: .seconds(30))) != nil)
        let left = leftAt.load(ordering: .acquiring)
        #expect(left != 0)
        #expect(returned != nil && returned! >= left, "synchronize returned before the reader left its section")
    }

    @Test func callbacksRunAfterAGracePeriodAndBarrierWaitsForThem() throws {
        let inSection = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let readerLeft = Atomic<Bool>(false)
        let ranBeforeReaderLeft = Atomic<Bool>(false)
        let ran = Atomic<Int>(0)
        let reader = try! KThread(name: "reader") {
            RCU.read {
                inSection.signal()
                _ = release.wait(timeout: .now() + 30)
                readerLeft.store(true, ordering: .releasing)
            }
        }
        #expect(inSection.wait(timeout: .now() + 30) == .success)
        for _ in 0..<10 {
            RCU.callAfterGracePeriod {
                if !readerLeft.load(ordering: .acquiring) { ranBeforeReaderLeft.store(true, ordering: .relaxed) }
                ran.add(1, ordering: .relaxed)
            }
        }
        usleep(20_000)
        #expect(ran.load(ordering: .relaxed) == 0, "a callback ran while a pre-existing reader was in its section")
        release.signal()
        #expect((try? reader.join(timeout: .seconds(30))) != nil)
        let barrier = Threads.onThread { () -> Bool in (try? RCU.barrier()) != nil }
        #expect(barrier == true)
        let ranCount = ran.load(ordering: .relaxed)
        let early = ranBeforeReaderLeft.load(ordering: .relaxed)
        #expect(ranCount == 10)
        #expect(!early)
    }

    @Test func gracePeriodCountersCountExactly() throws {
        let counts = try Threads.onThread { () -> (UInt64, UInt64) in
            let mine = RCU.gracePeriodsWaitedByCurrentThread
            let all = RCU.gracePeriodsWaited
            for _ in 0..<7 { try RCU.synchronize() }
            return (RCU.gracePeriodsWaitedByCurrentThread - mine, RCU.gracePeriodsWaited - all)
        }
        #expect(counts?.0 == 7)
        #expect((counts?.1 ?? 0) >= 7)
    }

    @Test func callbacksRunInSoftIRQContext() throws {
        let log = KernelLog(name: "softirq")
        let refused = Atomic<Bool>(false)
        RCU.callAfterGracePeriod {
            KernelLog.withCurrent(log) {
                do { try RCU.synchronize() } catch { refused.store(true, ordering: .relaxed) }
            }
        }
        _ = Threads.onThread { try? RCU.barrier() }
        let wasRefused = refused.load(ordering: .relaxed)
        #expect(wasRefused)
        #expect(log.reports.first?.lines.contains { $0.hasPrefix("BUG: sleeping function called from invalid context") } == true)
        #expect(log.reports.first?.lines.contains("preempt_count: 100, expected: 0") == true)
    }

    /// What a callback captured is released when the callback is done, still in softirq
    /// context: a deinit there that sleeps is reported like the callback's own sleep.
    @Test func aCallbacksCapturesAreReleasedInSoftIRQContext() {
        final class Captured: Sendable {
            let inInterruptAtDeinit: Box<Bool?>
            init(_ box: Box<Bool?>) { inInterruptAtDeinit = box }
            deinit { inInterruptAtDeinit.set(AtomicContext.inInterrupt) }
        }
        let seen = Box<Bool?>(nil)
        func queue() {
            let captured = Captured(seen)
            RCU.callAfterGracePeriod { _ = captured }
        }
        queue()
        _ = Threads.onThread { try? RCU.barrier() }
        #expect(seen.get() == true)
    }

    /// liburcu's call_rcu thread does not survive fork(): the library installs liburcu's
    /// fork hooks, so callbacks queued in a forked child run. (Without them the child's
    /// rcu_barrier waits forever; the parent gives up after 10 s and fails.)
    /// Not under TSan: it kills a multi-threaded process's child that starts a thread
    /// ("starting new threads after multi-threaded fork is not supported").
    @Test(.disabled(if: Scale.isTSan, "TSan does not support threads started after a multi-threaded fork"))
    func callAfterGracePeriodWorksInAForkedChild() async {
        await #expect(processExitsWith: .success) { callRCUAcrossFork() }
    }
}

@Suite(.timeLimit(.minutes(2)))
struct RCUPointerTests {
    final class Node: Sendable {
        let generation: Int
        let state = Atomic<UInt64>(Counted.alive)
        let counter: Counted.Counter
        init(_ generation: Int, counter: Counted.Counter) {
            self.generation = generation
            self.counter = counter
            counter.created.add(1, ordering: .relaxed)
        }
        deinit {
            state.store(Counted.poison, ordering: .releasing)
            counter.dropped.add(1, ordering: .relaxed)
        }
    }

    /// Readers follow the pointer continuously while a writer replaces it; no reader ever
    /// sees a released node, generations never go backwards, and every replaced node is
    /// released exactly once after the grace periods.
    @Test(arguments: [RCUPointerTests.Mode.deferred, .synchronous])
    func readersNeverSeeAReleasedObject(mode: Mode) throws {
        let counter = Counted.Counter()
        let pointer = RCUPointer(Node(0, counter: counter))
        let stop = Atomic<Bool>(false)
        let poisoned = Atomic<Int>(0)
        let backwards = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        let replacements = Scale.iterations(2_000, tsan: 200)
        let readersStarted = Atomic<Int>(0)
        Threads.run(3, name: "rcuptr") { index in
            if index == 0 {
                while readersStarted.load(ordering: .acquiring) < 2 { sched_yield() }
                for generation in 1...replacements {
                    if generation % 100 == 0 { usleep(200) }  // let the readers in
                    let next = Node(generation, counter: counter)
                    switch mode {
                    case .deferred: pointer.replace(with: next)
                    case .synchronous: _ = try! pointer.exchange(next)
                    }
                }
                stop.store(true, ordering: .releasing)
            } else {
                var last = -1
                var n = 0
                readersStarted.add(1, ordering: .releasing)
                while !stop.load(ordering: .acquiring) {
                    pointer.read { node in
                        guard let node else { return }
                        if node.state.load(ordering: .acquiring) != Counted.alive { poisoned.add(1, ordering: .relaxed) }
                        if node.generation < last { backwards.add(1, ordering: .relaxed) }
                        last = node.generation
                    }
                    n += 1
                }
                reads.add(n, ordering: .relaxed)
            }
        }
        _ = Threads.onThread { try? RCU.barrier() }
        let (poisonedReads, backwardReads, totalReads) =
            (poisoned.load(ordering: .relaxed), backwards.load(ordering: .relaxed), reads.load(ordering: .relaxed))
        #expect(poisonedReads == 0)
        #expect(backwardReads == 0)
        #expect(totalReads > 0)
        #expect(counter.droppedCount == replacements, "every replaced node released exactly once")
        #expect(counter.live == 1)
        _ = pointer
    }

    enum Mode: CustomStringConvertible, Sendable {
        case deferred, synchronous
        var description: String { self == .deferred ? "replace (call_rcu)" : "exchange (synchronize)" }
    }
}

/// Queues a callback, forks, queues one in the child and waits for it there. Exits 0 if
/// the child's callback ran, 1 otherwise (or after 10 s).
func callRCUAcrossFork() {
    final class Ran: Sendable { let count = Atomic<Int>(0) }
    let thread = try! KThread(name: "forker") {
        let ran = Ran()
        RCU.callAfterGracePeriod { ran.count.add(1, ordering: .relaxed) }
        try! RCU.barrier()
        let pid = fork()
        if pid == 0 {
            RCU.callAfterGracePeriod { ran.count.add(1, ordering: .relaxed) }
            try? RCU.barrier()
            _exit(ran.count.load(ordering: .relaxed) == 2 ? 0 : 1)
        }
        var status: Int32 = 0
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while waitpid(pid, &status, WNOHANG) == 0 {
            if monotonicNanoseconds() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                exit(1)
            }
            usleep(1_000)
        }
        if status != 0 { print("forked child: wait status \(status)") }
        exit(status == 0 ? 0 : 1)
    }
    try! thread.join()
}
