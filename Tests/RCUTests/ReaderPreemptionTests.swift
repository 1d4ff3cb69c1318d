import Foundation
import KernelRuntime
import RCU
import Testing

/// `Faults.readerPreemption` rides on the read lock's slow path: a thread that registers
/// while it is configured is delayed in its read locks, one registered before is not (its
/// read locks never leave the inlined fast path). Process-wide faults would reach every
/// test running in parallel, so the check runs in a child process.
@Suite(.timeLimit(.minutes(1)))
struct ReaderPreemptionTests {
    @Test func readersRegisteredAfterTheFaultIsConfiguredArePreempted() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            readerPreemptionChild()
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(!stderr.contains("FAILED"), "\(stderr)")
        #expect(stderr.contains("after: ReaderRun(state: 5,"), "\(stderr)")
    }
}

private func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("FAILED: " + message + "\n").utf8))
    exit(1)
}

/// What a reader thread saw: its registration state, the site's draws on it, and how long
/// its sections took.
private struct ReaderRun: Sendable {
    var state: Int32 = -1
    var draws: UInt64 = 0
    var nanoseconds: UInt64 = 0
    var depths: [Int] = []
}

private let sections = 100

/// `sections` read-side sections (one of them nested) on the calling thread, timed.
private func readAndMeasure() -> ReaderRun {
    var run = ReaderRun()
    let start = monotonicNanoseconds()
    for i in 0..<sections {
        if i == 0 {
            RCU.read {
                run.depths.append(RCU.readDepth)
                RCU.read { run.depths.append(RCU.readDepth) }
                run.depths.append(RCU.readDepth)
            }
            run.depths.append(RCU.readDepth)
        } else {
            RCU.read {}
        }
    }
    run.nanoseconds = monotonicNanoseconds() - start
    run.state = ThreadState.rcuRegistration
    run.draws = FaultInjection.draws(at: .readerPreemption)
    return run
}

/// Exit-test body. A thread registers, then reader preemption is configured for the process
/// (every section, up to 200 µs); that thread and a thread started afterwards each run 100
/// sections. Only the second is faulty: its sections draw at the site and take at least a
/// few milliseconds in all; the first's draw nothing. Both leave no section open: a grace
/// period still ends.
private func readerPreemptionChild() {
    let go = DispatchSemaphore(value: 0)
    let registered = DispatchSemaphore(value: 0)
    let early = LockedValue(ReaderRun())
    let before = try! KThread(name: "registered-before") {
        RCU.read {}
        registered.signal()
        go.wait()
        early.withLock { $0 = readAndMeasure() }
    }
    registered.wait()
    FaultInjection.process = try! Faults(parsing: "seed=7,reader=1:200us")
    go.signal()
    try! before.join()

    let late = LockedValue(ReaderRun())
    let after = try! KThread(name: "registered-after") { late.withLock { $0 = readAndMeasure() } }
    try! after.join()

    let (e, l) = (early.withLock { $0 }, late.withLock { $0 })
    FileHandle.standardError.write(Data("before: \(e)\nafter: \(l)\n".utf8))
    guard e.state == 1, e.draws == 0 else { fail("the thread registered before the fault was preempted: \(e)") }
    // Every section decides (and, at probability 1, draws a length): at least one draw each.
    guard l.state == 5, l.draws >= UInt64(sections) else { fail("the thread registered after was not preempted: \(l)") }
    // Lengths uniform up to 200 µs: about 10 ms for 100 sections; 2 ms is a floor no seed misses.
    guard l.nanoseconds >= 2_000_000, l.nanoseconds > e.nanoseconds else {
        fail("preempted sections were not slower: \(l.nanoseconds) ns against \(e.nanoseconds) ns")
    }
    guard e.depths == [1, 2, 1, 0], l.depths == [1, 2, 1, 0] else { fail("nesting: \(e.depths) \(l.depths)") }
    do { try RCU.synchronize() } catch { fail("synchronize: \(error)") }
    exit(0)
}
