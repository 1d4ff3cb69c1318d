import KernelRuntime
import Synchronization

/// The grace-period thread (`irqemu-rcu-gp`): one runtime thread that shares grace periods
/// among every waiter that arrived, as liburcu's and QEMU's `call_rcu` threads do, but
/// without their sleeps (liburcu's worker sleeps 10 ms after every wake-up, so awaits
/// built on it reach about 90 a second).
///
/// Waiters are the async overloads (`RCU.synchronize()`, `Revocable.revoke()`) and the
/// runtime's worker threads (an async unbind's grace period). Each waits for a grace
/// period that starts after it arrived. The thread sleeps while nobody waits; woken, it
/// takes every waiter that has arrived, runs ONE `synchronize_rcu`, and completes them all.
/// Waiters that arrive meanwhile form the next batch.
///
/// Batching, so that one await costs little and a stream of them few grace periods:
/// - A waiter that finds the thread idle starts a grace period at once: one await with
///   nothing else pending costs one grace period and two thread wake-ups (tens of µs), and
///   waiters that each wait again as soon as they are resumed (sequential awaits) are never
///   held back.
/// - Waiters that arrived while the thread woke (a burst) gather for up to a millisecond.
/// - Waiters that arrived while a grace period ran are under load: after it, the next
///   batch gathers for forty times the length of the recent grace periods (their moving
///   average), between 10 ms and `holdoff` (100 ms), so that under load the thread spends
///   about 2.5% of the time in grace periods at most. A stream that keeps coming until then
///   stays under load. Cheap grace periods (a few µs, no reader preempted inside its
///   section) gather for 10 ms; expensive ones for up to the holdoff: on a machine
///   whose CPUs all run readers, a grace period waits for a reader preempted inside its
///   section, up to a scheduler tick, and the readers pay for it (the README's RCU cliff). A
///   steady stream (revokes started every millisecond) then costs about ten grace periods a
///   second instead of a thousand.
/// - A gathering batch starts early once its waiters stop coming (no arrival for eight
///   times their mean gap, 1 ms at least: a preempted task's pause is not an end), or at
///   once when `batchLimit` (2,048) have arrived: the end of a burst does not wait out the
///   holdoff.
///
/// Counting: each grace period the thread runs is counted once in
/// `RCU.gracePeriodsWaited` (irqemu started it), however many waiters shared it; a runtime
/// thread that waited for one counts one in its `gracePeriodsWaitedByCurrentThread`.
///
/// The thread runs no user code: a batch's completions resume tasks and hand drops to the
/// `BlockingPool` (a value's deinit may wait for an unbind that waits for this thread).
package final class GracePeriodThread: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): every `var` is only touched with `lock` held.

    /// The process-wide thread; it starts on first use.
    package static let shared = GracePeriodThread()

    /// How long a batch gathers under load at most.
    package let holdoff: Duration
    /// A batch this large starts at once.
    package let batchLimit: Int
    /// How long a burst's batch gathers at most, when the thread was idle.
    package let burstHoldoff = Duration.milliseconds(1)

    private let lock = ConditionLock()
    /// What to run on this thread after the next grace period, in arrival order.
    private var callbacks: [@Sendable () -> Void] = []
    /// What to hand to the worker pool after the next grace period, in arrival order.
    private var work: [@Sendable () -> Void] = []
    /// The grace period the latest waiter needs (numbered from 1).
    private var requested: UInt64 = 0
    /// Grace periods started.
    private var started: UInt64 = 0
    /// Waiters of the next batch (callbacks, work and blocking waits), and when the first
    /// and the latest arrived.
    private var arrivals = 0
    private var firstArrival: UInt64 = 0
    private var lastArrival: UInt64 = 0
    /// Whether the thread sleeps with nothing to do (a waiter must wake it), gathers a batch
    /// (woken only when the batch is full), or neither.
    private var waiting = Waiting.no
    private enum Waiting { case no, idle, gathering }
    private var thread: KThread?

    /// Grace periods completed, and the condition blocking waiters sleep on.
    private let completed = Atomic<UInt64>(0)
    private let done = ConditionLock()

    private let waitersServed = Atomic<UInt64>(0)
    private let batchesGathered = Atomic<UInt64>(0)

    /// A thread that gathers batches under load for up to `holdoff`, and starts a batch of
    /// `batchLimit` waiters at once.
    package init(holdoff: Duration = .milliseconds(100), batchLimit: Int = 2048) {
        self.holdoff = holdoff
        self.batchLimit = batchLimit
    }

    /// Grace periods this thread has run (each shared by its batch).
    package var gracePeriods: UInt64 { completed.load(ordering: .acquiring) }

    /// Waiters it has completed (callbacks, work and blocking waits).
    package var waiters: UInt64 { waitersServed.load(ordering: .relaxed) }

    /// Batches that gathered (under load, or in a burst) before their grace period began.
    package var gatheredBatches: UInt64 { batchesGathered.load(ordering: .relaxed) }

    /// Runs `callback` on the grace-period thread once a grace period that began after this
    /// call has ended. Never sleeps: callable from any context. `callback` must not sleep
    /// or run user code (it resumes a continuation).
    package func afterGracePeriod(_ callback: @escaping @Sendable () -> Void) {
        let wake = lock.withLock { () -> Bool in
            callbacks.append(callback)
            return arrivedLocked()
        }
        if wake { lock.wakeAll() }
    }

    /// Runs `work` on a `BlockingPool` thread, in process context, once a grace period that
    /// began after this call has ended: where a value is dropped. A batch's work is handed
    /// over in one go. Never sleeps: callable from any context.
    package func workAfterGracePeriod(_ work: @escaping @Sendable () -> Void) {
        let wake = lock.withLock { () -> Bool in
            self.work.append(work)
            return arrivedLocked()
        }
        if wake { lock.wakeAll() }
    }

    /// Blocks the calling thread until a grace period that began after this call has ended,
    /// sharing it with the other waiters. For runtime threads (a worker finishing an async
    /// unbind), never for the concurrency pool. Counted in the thread's
    /// `gracePeriodsWaitedByCurrentThread`.
    package func waitForGracePeriod() {
        let (ticket, wake) = lock.withLock { () -> (UInt64, Bool) in
            let wake = arrivedLocked()
            return (requested, wake)
        }
        if wake { lock.wakeAll() }
        _ = done.wait { completed.load(ordering: .acquiring) >= ticket }
        ThreadState.gracePeriods &+= 1
    }

    /// Books a waiter into the next batch, starts the thread if it is not running, and says
    /// whether to wake it. Lock held.
    private func arrivedLocked() -> Bool {
        requested = started + 1
        let now = monotonicNanoseconds()
        if arrivals == 0 { firstArrival = now }
        arrivals += 1
        lastArrival = now
        if thread == nil {
            // If the thread cannot start (the process is out of threads), the waiter stays
            // queued and the next one tries again.
            thread = try? KThread(runtime: "irqemu-rcu-gp") { [self] in loop() }
        }
        switch waiting {
        case .idle: return true
        case .gathering: return arrivals >= batchLimit
        case .no: return false
        }
    }

    /// When a gathering batch should start its grace period: at once when it is full;
    /// otherwise once the waiters have stopped coming (no arrival for eight times their mean
    /// gap, 1 ms at least; 2 ms after a lone waiter), and at the latest at `limit`. So the
    /// end of a burst, or waiters that each wait again as soon as they are resumed, start at
    /// once, and a steady stream (revokes started every millisecond) gathers until `limit`.
    /// Nil: now. Lock held.
    private func gatherDeadlineLocked(limit: UInt64) -> Deadline? {
        guard arrivals < batchLimit else { return nil }
        let quiet = arrivals > 1
            ? min(max(8 &* ((lastArrival &- firstArrival) / UInt64(arrivals - 1)), 1_000_000), holdoff.clampedNanoseconds)
            : 2_000_000
        let deadline = min(limit, lastArrival &+ quiet)
        return monotonicNanoseconds() < deadline ? Deadline(nanoseconds: deadline) : nil
    }

    /// How long a batch under load gathers: forty times `cost` (the recent grace periods'
    /// length), between 10 ms and the holdoff.
    private func loadHoldoff(cost: UInt64) -> UInt64 {
        min(max(40 &* cost, 10_000_000), holdoff.clampedNanoseconds)
    }

    private func loop() {
        var underLoad = false
        /// The grace periods' length, a moving average (each new one weighs a quarter).
        var cost: UInt64 = 0
        /// The last batch gathered until its limit with waiters still coming: a steady stream.
        var streaming = false
        var lastEnd: UInt64 = 0
        while true {
            let (number, batch, batchWork, count) = lock.withLock {
                () -> (UInt64, [@Sendable () -> Void], [@Sendable () -> Void], Int) in
                waiting = .idle
                _ = lock.waitLocked { requested > started }
                // Under load (waiters arrived while the last grace period ran, or a steady
                // stream of them), let the batch gather for up to the holdoff after the last
                // grace period; in a burst (more waiters came while this thread woke), for up
                // to a millisecond. A lone waiter starts at once.
                streaming = false
                if underLoad || arrivals > 1 {
                    batchesGathered.add(1, ordering: .relaxed)
                    waiting = .gathering
                    let limit = underLoad
                        ? lastEnd &+ loadHoldoff(cost: cost) : monotonicNanoseconds() &+ burstHoldoff.clampedNanoseconds
                    while let deadline = gatherDeadlineLocked(limit: limit) {
                        _ = lock.waitLocked(until: deadline) { arrivals >= batchLimit }
                    }
                    streaming = underLoad && arrivals > 1 && monotonicNanoseconds() >= limit
                }
                waiting = .no
                started += 1
                defer {
                    callbacks = []
                    work = []
                    arrivals = 0
                }
                return (started, callbacks, work, arrivals)
            }
            let start = monotonicNanoseconds()
            RCU.synchronizeUnchecked()
            lastEnd = monotonicNanoseconds()
            cost = cost - cost / 4 + (lastEnd &- start) / 4
            // Under load if waiters arrived while it ran (decided before anyone is resumed, so
            // a waiter that was, and waits again at once, finds the thread idle), or if they
            // came steadily until the holdoff ended.
            underLoad = lock.withLock { requested > number } || streaming
            done.withLock { completed.store(number, ordering: .releasing) }
            done.wakeAll()
            waitersServed.add(UInt64(count), ordering: .relaxed)
            BlockingPool.shared.submit(contentsOf: batchWork)
            for callback in batch { callback() }
        }
    }
}
