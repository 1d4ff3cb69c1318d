import Foundation
import KernelRuntime
import Synchronization
import TestSupport

/// A work item whose runs are counted and whose body a test chooses. Records whether two
/// runs ever overlapped, the thread each ran on, and its context.
final class Job: WorkItem {
    let work: Work
    let runs = Atomic<Int>(0)
    let running = Atomic<Int>(0)
    let overlapped = Atomic<Bool>(false)
    let threadNames = Box<[String]>([])
    let atomicInRun = Atomic<Bool>(false)
    let body: Box<(@Sendable (Job) -> Void)?>

    init(_ name: String = "job", log: KernelLog? = nil, body: (@Sendable (Job) -> Void)? = nil) {
        work = Work(name: name, log: log)
        self.body = Box(body)
    }

    func run() {
        if running.add(1, ordering: .sequentiallyConsistent).newValue > 1 { overlapped.store(true, ordering: .relaxed) }
        if AtomicContext.isAtomic { atomicInRun.store(true, ordering: .relaxed) }
        threadNames.update { $0.append(KThread.currentName) }
        body.get()?(self)
        running.subtract(1, ordering: .sequentiallyConsistent)
        runs.add(1, ordering: .sequentiallyConsistent)
    }

    var runCount: Int { runs.load(ordering: .sequentiallyConsistent) }
}

/// A delayed work item with a test-chosen body.
final class DelayedJob: DelayedWorkItem {
    let delayedWork: DelayedWork
    let runs = Atomic<Int>(0)
    let body: Box<(@Sendable (DelayedJob) -> Void)?>

    init(_ name: String = "delayed-job", log: KernelLog? = nil, body: (@Sendable (DelayedJob) -> Void)? = nil) {
        delayedWork = DelayedWork(name: name, log: log)
        self.body = Box(body)
    }

    func run() {
        body.get()?(self)
        runs.add(1, ordering: .sequentiallyConsistent)
    }

    var runCount: Int { runs.load(ordering: .sequentiallyConsistent) }
}

/// Holds a work item inside its run until released (10 s at most, so a failed test never
/// leaves a worker blocked).
final class RunGate: Sendable {
    private let entered = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)
    init() {}
    /// Call in the run: signals the test and waits for `release()`.
    func pass() {
        entered.signal()
        _ = released.wait(timeout: .now() + 10)
    }
    /// Waits (10 s at most) until a run is held in `pass()`.
    @discardableResult
    func waitUntilHeld() -> Bool { entered.wait(timeout: .now() + 10) == .success }
    func release() { released.signal() }
}

/// A fresh queue per test (tests run in parallel: a system queue's figures are shared).
func makeQueue(_ name: String, flags: WorkqueueFlags = [], maxActive: Int = 0, log: KernelLog? = nil) throws -> Workqueue {
    try Workqueue(name: name, flags: flags, maxActive: maxActive, log: log)
}

/// Spins (without sleeping) up to `seconds` for `condition`.
func spin(upTo seconds: Double, until condition: () -> Bool) -> Bool {
    let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
    while !condition() {
        if monotonicNanoseconds() > deadline { return false }
        sched_yield()
    }
    return true
}
