import CSupport
import KernelRuntime
import Synchronization

/// Read-copy-update, backed by liburcu's memb flavour.
///
/// Readers enter cheap read-side sections (`RCU.read`, `RCUReadGuard`); writers unpublish
/// what readers might see, wait for a grace period (`RCU.synchronize()`), then free it.
/// A grace period ends once every read-side section that was running when it began has
/// ended.
///
/// Threads register with liburcu on their first read lock and unregister at exit
/// (`RCUThread`).
public enum RCU {
    private static let processGracePeriods = Atomic<UInt64>(0)

    /// Runs `body` inside a read-side critical section.
    ///
    /// - Important: `body` runs in atomic context: it must not sleep (the checker refuses
    ///   sleeping calls), and it must not let a reference it reached through RCU escape.
    /// - Complexity: A few nanoseconds on top of `body`; no allocation.
    @inlinable @inline(__always)
    public static func read<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        let held = RCUReadGuard(unchecked: ())
        defer { _ = held }
        return try body()
    }

    /// Whether the calling thread is inside a read-side section.
    @inlinable
    public static var isReadLocked: Bool { CSupport_rcu_read_ongoing() }

    /// Read-side nesting depth of the calling thread.
    public static var readDepth: Int { Int(CSupport_rcu_read_depth()) }

    /// Waits for every read-side section that began before the call (`synchronize_rcu`).
    ///
    /// - Precondition: Process context. In a read-side section, a hard-IRQ handler, a
    ///   spinlock or a `call_rcu` callback the call is reported (lockdep's `Illegal
    ///   synchronize_rcu() in RCU read-side critical section!` and the `BUG: sleeping
    ///   function` lines) and refused; in liburcu it would never return.
    /// - Complexity: One grace period: tens of microseconds to milliseconds (it sends
    ///   membarrier IPIs to the CPUs running registered threads).
    @available(*, noasync, message: "blocks the thread for an RCU grace period")
    public static func synchronize(log: KernelLog? = nil, file: StaticString = #fileID, line: UInt = #line) throws(AtomicContextViolation) {
        try checkNotInReadSection("synchronize_rcu", "RCU.synchronize()", log: log, file: file, line: line)
        synchronizeUnchecked()
    }

    /// `synchronize()` for callers that have already run the checker.
    package static func synchronizeUnchecked() {
        CSupport_synchronize_rcu()
        // A longer grace period is always legal (`Faults.gracePeriod`).
        FaultInjection.delay(.gracePeriod) { $0.gracePeriod }
        processGracePeriods.add(1, ordering: .relaxed)
        ThreadState.gracePeriods &+= 1
    }

    /// Runs `callback` after a grace period, on liburcu's `call_rcu` thread (`call_rcu`).
    ///
    /// Returns at once and never sleeps, so it may be called from atomic context. The
    /// callback runs in softirq context: it must not sleep either.
    /// - Complexity: One allocation per call.
    public static func callAfterGracePeriod(_ callback: @escaping @Sendable () -> Void) {
        // liburcu's call_rcu takes a read lock: the caller must be registered.
        RCUThread.register()
        let box = unsafe Unmanaged.passRetained(CallbackBox(callback))
        let run: @convention(c) (UnsafeMutablePointer<CSupport_rcu_callback>) -> Void = { request in
            // SAFETY: `request` is the block allocated below and `context` the +1 taken
            // above; liburcu calls each callback exactly once, so both are consumed once.
            let box = unsafe Unmanaged<CallbackBox>.fromOpaque(request.pointee.context!).takeRetainedValue()
            unsafe request.deinitialize(count: 1)
            unsafe request.deallocate()
            // A later callback is always legal (`Faults.callback`); the delay is the
            // emulation's, before softirq context begins.
            FaultInjection.delay(.callback) { $0.callback }
            AtomicContext.enterSoftIRQ()
            box.callback()
            // What the callback captured goes here, still in softirq context (as the data a
            // kernel callback frees), not at some later point the optimizer picks.
            _ = consume box
            AtomicContext.exitSoftIRQ()
        }
        let request = UnsafeMutablePointer<CSupport_rcu_callback>.allocate(capacity: 1)
        unsafe request.initialize(to: CSupport_rcu_callback(head: rcu_head(), fn: run, context: box.toOpaque()))
        unsafe CSupport_call_rcu(request)
    }

    /// Waits until every callback queued with `callAfterGracePeriod` before the call has
    /// run (`rcu_barrier`).
    ///
    /// - Precondition: Process context, checked as for `synchronize()`.
    @available(*, noasync, message: "blocks the thread until queued RCU callbacks have run")
    public static func barrier(log: KernelLog? = nil, file: StaticString = #fileID, line: UInt = #line) throws(AtomicContextViolation) {
        try checkNotInReadSection("rcu_barrier", "RCU.barrier()", log: log, file: file, line: line)
        RCUThread.register()
        CSupport_rcu_barrier()
    }

    /// Grace periods the library has waited for in this process, on any thread.
    public static var gracePeriodsWaited: UInt64 { processGracePeriods.load(ordering: .relaxed) }

    /// Grace periods the calling thread has waited for. Tests that run in parallel compare
    /// this before and after an operation to count exactly its own grace periods.
    public static var gracePeriodsWaitedByCurrentThread: UInt64 { ThreadState.gracePeriods }

    /// Whether liburcu uses `membarrier(2)` (cheap readers, IPIs on grace periods).
    public static var usesMembarrier: Bool { CSupport_rcu_has_membarrier() }

    static func checkNotInReadSection(
        _ kernelName: String, _ function: String, log: KernelLog?, file: StaticString, line: UInt
    ) throws(AtomicContextViolation) {
        guard AtomicContext.isAtomic else { return }
        // lockdep's RCU check is synchronize_rcu's; rcu_barrier only has might_sleep's lines.
        let extra = kernelName == "synchronize_rcu" && CSupport_rcu_read_ongoing()
            ? ["WARNING: suspicious RCU usage", "Illegal \(kernelName)() in RCU read-side critical section!"]
            : []
        throw AtomicContext.sleepingCallReported(function, log: log, extra: extra, file: "\(file)", line: line)
    }
}

private final class CallbackBox: Sendable {
    let callback: @Sendable () -> Void
    init(_ callback: @escaping @Sendable () -> Void) { self.callback = callback }
}
