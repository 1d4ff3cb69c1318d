import CSupport
import Glibc

/// A real pthread that runs one closure: the kernel's `kthread`.
///
/// Dispatcher CPUs, IRQ threads, the reaper and test readers are `KThread`s, never threads
/// of Swift's concurrency pool (which RCU cannot register). A `KThread` registers with
/// liburcu on its first RCU read lock (the layers above register theirs at start) and is
/// unregistered when it exits.
///
/// - Note: All methods are thread-safe. Join every thread you start; a `KThread` released
///   without a join is detached.
public final class KThread: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `handle` is written once in init; `state` is locked.
    public let name: String
    private var handle = pthread_t()
    private let state = WaitQueue()
    private var finished = false
    private var joined = false
    private let tidBox = LockedValue<Int32>(0)

    private final class Start: @unchecked Sendable {
        // SAFETY: handed to exactly one new thread, which takes the only reference.
        let thread: KThread
        let body: @Sendable () -> Void
        init(_ thread: KThread, _ body: @escaping @Sendable () -> Void) {
            self.thread = thread
            self.body = body
        }
    }

    /// Starts a thread named `name` (the first 15 bytes are what `ps` and reports show).
    public init(name: String, _ body: @escaping @Sendable () -> Void) {
        self.name = name
        let start = unsafe Unmanaged.passRetained(Start(self, body)).toOpaque()
        let rc = unsafe pthread_create(&handle, nil, { raw in
            // SAFETY: the +1 passed below, taken exactly once by the new thread.
            let start = unsafe Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            start.thread.run(start.body)
            return nil
        }, start)
        precondition(rc == 0, "pthread_create(\(name)): \(rc)")
    }

    deinit {
        if !joined { pthread_detach(handle) }
    }

    private func run(_ body: @Sendable () -> Void) {
        _ = unsafe name.withCString { unsafe CSupport_set_thread_name($0) }
        tidBox.withLock { $0 = CSupport_gettid() }
        body()
        state.lock.withLock { finished = true }
        state.wakeAll()
    }

    /// The thread's kernel id, once it has started (0 before).
    public var tid: Int32 { tidBox.withLock { $0 } }

    /// Pins the calling thread to host CPU `cpu` (`sched_setaffinity`). Returns whether it
    /// worked.
    @discardableResult
    public static func pinCurrent(toHostCPU cpu: Int) -> Bool { CSupport_pin_to_cpu(Int32(cpu)) == 0 }

    /// Host CPUs this process may run on.
    public static var hostCPUCount: Int { Int(CSupport_online_cpus()) }

    /// The calling thread's name (the kernel's `comm`, as `ps` shows it).
    public static var currentName: String { ThreadState.name }

    /// The kernel id of the calling thread (any thread; cached per thread).
    public static var currentID: Int32 { ThreadState.tid }

    /// Whether the calling thread is this thread.
    public var isCurrent: Bool { pthread_equal(pthread_self(), handle) != 0 }

    /// Whether `body` has returned.
    public var isFinished: Bool { state.lock.withLock { finished } }

    /// Waits for the thread to finish (`kthread_stop`'s wait).
    @available(*, noasync, message: "blocks the thread")
    public func join() {
        _ = join(timeout: .infinity)
    }

    /// Waits up to `timeout` seconds for the thread to finish; returns whether it did.
    /// A thread that finished is joined exactly once.
    @available(*, noasync, message: "blocks the thread")
    @discardableResult
    public func join(timeout: Double) -> Bool {
        precondition(!isCurrent, "KThread \(name) joining itself")
        let done = state.wait(until: .after(seconds: timeout)) { finished }
        guard done else { return false }
        let mustJoin = state.lock.withLock { () -> Bool in
            defer { joined = true }
            return !joined
        }
        if mustJoin { pthread_join(handle, nil) }
        return true
    }
}
