import Foundation
import KernelRuntime
import Synchronization

/// Holds a thread (a reader inside its section, a handler, a `withBound` holder) at a point
/// until the test opens it, or for `holdAtMost`. The held thread polls, so a gate never
/// depends on a condition variable the test shares with the code under test.
///
/// A gate that holds what the whole process shares (a reader's section holds every grace
/// period of the process off) must not wait for a task to open it: other suites'
/// synchronous tests block threads of the concurrency pool in grace periods, so the task
/// could be kept off the pool for as long as the gate holds. Give such a gate a short
/// `holdAtMost` and let it open itself; a test checks what its await waited for by
/// `passed` when the await returned, not by timing.
public final class Gate: Sendable {
    public let name: String
    public let holdAtMost: Duration
    private let opened = Atomic<Bool>(false)
    private let arrivals = Atomic<Int>(0)
    private let departures = Atomic<Int>(0)

    public init(_ name: String, holdAtMost: Duration = .seconds(30)) {
        self.name = name
        self.holdAtMost = holdAtMost
    }

    /// Called by the held thread: counts it in, waits until the gate opens (or `holdAtMost`
    /// has passed), and counts it out, still at the held point (inside the reader's section,
    /// say): `passed` counts holders that have let go, or are about to.
    public func pass() {
        arrivals.add(1, ordering: .sequentiallyConsistent)
        let deadline = Deadline.after(holdAtMost)
        while !opened.load(ordering: .acquiring) && !deadline.hasPassed { usleep(100) }
        departures.add(1, ordering: .sequentiallyConsistent)
    }

    /// Holders that have finished waiting at the gate (opened or timed out).
    public var passed: Int { departures.load(ordering: .sequentiallyConsistent) }

    /// Lets every held thread (and every later one) through.
    public func open() { opened.store(true, ordering: .releasing) }

    public var isOpen: Bool { opened.load(ordering: .acquiring) }

    /// Threads that reached the gate so far.
    public var arrived: Int { arrivals.load(ordering: .sequentiallyConsistent) }

    /// Polls (from a thread, or from synchronous setup code) until `count` threads have
    /// reached the gate, up to `timeout`; returns whether they did.
    @discardableResult
    public func waitUntilReached(_ count: Int = 1, timeout: Duration = .seconds(10)) -> Bool {
        let deadline = Deadline.after(timeout)
        while arrived < count {
            if deadline.hasPassed { return false }
            usleep(100)
        }
        return true
    }

    /// `waitUntilReached` for async code: sleeps the task between polls.
    public func reached(_ count: Int = 1, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = Deadline.after(timeout)
        while arrived < count {
            if deadline.hasPassed { return false }
            try? await Task.sleep(for: .microseconds(200))
        }
        return true
    }
}

/// A flag set once, from any thread.
public final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public func set() { value.store(true, ordering: .releasing) }
    public var isSet: Bool { value.load(ordering: .acquiring) }
}

/// A counter shared between tasks and threads.
public final class AtomicCounter: Sendable {
    private let count = Atomic<Int>(0)
    public init() {}
    @discardableResult public func increment() -> Int { count.add(1, ordering: .sequentiallyConsistent).newValue }
    public var value: Int { count.load(ordering: .sequentiallyConsistent) }
}

/// Polls `condition` from a task (sleeping between polls) until it holds or `timeout`
/// passes; returns its last value.
public func eventually(timeout: Duration = .seconds(10), _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Deadline.after(timeout)
    while try !condition() {
        if deadline.hasPassed { return false }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return true
}

extension Gate {
    /// Opens the gate from a thread of its own once `flag` is set (30 s at most), so that
    /// what the gate holds (work on the reaper, say, which other tests flush from threads of
    /// the concurrency pool) never waits for a task to run. Join the returned thread.
    public func open(whenSet flag: Flag) throws -> KThread {
        try KThread(name: "gate-opener") { [self] in
            let deadline = Deadline.after(.seconds(30))
            while !flag.isSet && !deadline.hasPassed { usleep(100) }
            open()
        }
    }
}

extension Gate {
    /// Opens the gate from a thread of its own after `delay`. For a gate that holds what the
    /// whole process shares (a reader's section holds every grace period off; the reaper),
    /// which must never wait for a task: other suites' synchronous tests block threads of the
    /// concurrency pool in grace periods and reaper flushes, so a task could be kept off the
    /// pool for as long as the gate holds. A test then checks what it waited for by the
    /// gate's state when its await returned (`isOpen`), not by timing. Join the thread.
    public func open(after delay: Duration) throws -> KThread {
        try KThread(name: "gate-opener") { [self] in
            try? Deadline.after(delay).sleep()
            open()
        }
    }
}
