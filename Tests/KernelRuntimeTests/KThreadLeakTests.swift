import Foundation
import KernelRuntime
import Synchronization
import TestSupport
import Testing

/// `KThread`s must be joined: one released without a join is detached and, in debug
/// builds, reported as a leak to `KernelLog.standard`; a thread joining itself is refused.
/// Serialized: the leak reports go to the process-wide `KernelLog.standard`.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct KThreadLeakTests {
    /// A weak reference to a thread the test lets go of.
    final class WeakThread: @unchecked Sendable {
        // SAFETY: written once, before it is shared.
        weak var thread: KThread?
        init(_ thread: KThread) { self.thread = thread }
    }

    /// A thread name no other test uses (the leak line names the thread).
    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8))"
    }

    /// Waits (5 s at most) for the thread behind `weak` to be deallocated: its deinit, which
    /// reports a leak, has run then. The thread's start record holds it until its body
    /// returns.
    static func waitUntilDeallocated(_ weak: WeakThread) -> Bool {
        let deadline = Deadline.after(.seconds(5))
        while weak.thread != nil {
            if deadline.hasPassed { return false }
            usleep(1_000)
        }
        return true
    }

    /// Starts a thread named `name` whose body returns at once, and returns a weak
    /// reference to it; the strong one ends here, unjoined unless `join`.
    static func startThread(named name: String, join: Bool) throws -> WeakThread {
        let thread = try KThread(name: name) {}
        let weak = WeakThread(thread)
        if join { try thread.join(timeout: .seconds(10)) }
        return weak
    }

    #if DEBUG
    /// In a debug build, a `KThread` released without a join logs "irqemu: KThread NAME
    /// released without a join: detached (leaked)" to `KernelLog.standard`, once. Old code:
    /// it was detached silently.
    @Test func aThreadReleasedWithoutAJoinIsReportedAsLeaked() throws {
        let name = Self.uniqueName("leaky")
        let deallocated = try #require(Threads.onThread { () throws -> Bool in
            Self.waitUntilDeallocated(try Self.startThread(named: name, join: false))
        } as Bool?)
        #expect(deallocated, "the unjoined thread was released")
        let line = "irqemu: KThread \(name) released without a join: detached (leaked)"
        #expect(KernelLog.standard.messages.filter { $0 == line }.count == 1)
    }

    /// A joined `KThread` released afterwards logs nothing about itself. (Guards the test
    /// above: a deinit that reported every thread would pass it.)
    @Test func aJoinedThreadIsNotReported() throws {
        let name = Self.uniqueName("joined")
        let deallocated = try #require(Threads.onThread { () throws -> Bool in
            Self.waitUntilDeallocated(try Self.startThread(named: name, join: true))
        } as Bool?)
        #expect(deallocated, "the joined thread was released")
        #expect(!KernelLog.standard.messages.contains { $0.contains(name) })
    }
    #endif

    /// `join()` from inside the thread's own body throws `wouldDeadlock` at once, with a
    /// warning; the thread then finishes and is joined normally. Old code: the self-join
    /// waited for the body to finish, which never happens (a hang).
    @Test func joinOnTheThreadItselfIsRefused() throws {
        let log = KernelLog(name: "self-join")
        let name = Self.uniqueName("selfjoin")
        let box = Box<KThread?>(nil)
        let outcome = Box<(WaitError?, UInt64)?>(nil)
        let joined = try #require(Threads.onThread { () throws -> Bool in
            let thread = try KThread(name: name) {
                let deadline = Deadline.after(.seconds(10))
                while box.get() == nil && !deadline.hasPassed { usleep(100) }
                guard let me = box.get() else { return }
                KernelLog.withCurrent(log) {
                    let start = monotonicNanoseconds()
                    let error = caught(WaitError.self) { try me.join(timeout: .seconds(5)) }
                    outcome.set((error, monotonicNanoseconds() - start))
                }
            }
            box.set(thread)
            defer { box.set(nil) }
            try thread.join(timeout: .seconds(20))
            return true
        } as Bool?)
        #expect(joined)
        let (error, took) = try #require(outcome.get())
        #expect(error == .wouldDeadlock(reason: "KThread \(name) joining itself"))
        #expect(error?.errno == .deadlock)
        #expect(took < 1_000_000_000, "refused at once, not after the timeout")
        #expect(log.reports.map(\.headline) == ["WARNING: KThread \(name) joining itself would wait for itself"])
    }
}
