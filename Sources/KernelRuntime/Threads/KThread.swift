import CSupport
import Glibc
import SystemPackage

/// A real pthread that runs one closure: the kernel's `kthread`.
///
/// Dispatcher CPUs, IRQ threads, the reaper and test readers are `KThread`s, never threads
/// of Swift's concurrency pool (which RCU cannot register). A `KThread` registers with
/// liburcu on its first RCU read lock (the layers above register theirs at start) and is
/// unregistered when it exits.
///
/// Join every thread you start. One released without a join is detached; in debug builds
/// that is reported to `KernelLog.standard` as a leak (the kernel's `kthread_stop` is how
/// a kthread ends).
///
/// - Note: All methods are thread-safe.
public final class KThread: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `handle` is written once, in init, before the thread
    // is shared; `finished` and `joined` are only touched with `state` held.
    /// The thread's name (the first 15 bytes are what `ps` and reports show).
    public let name: String
    private var handle = pthread_t()
    private let state = ConditionLock()
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
    ///
    /// - Throws: The errno of a failed `pthread_create` (`EAGAIN` when the process is out
    ///   of threads or memory for a stack), as `kthread_create` returns `-ENOMEM`; no thread
    ///   was started and `body` is released.
    public convenience init(name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        try self.init(name: name, injectable: true, body)
    }

    /// A thread of irqemu's own runtime (the grace-period thread, the blocking pool, the
    /// kworkers and their timer, the quarantine): as `init(name:_:)`, but the
    /// thread-failure fault (`Faults.threadCreationFailure`, aimed at request_irq's and a
    /// controller's error paths) is not drawn, so an injected failure never stalls the
    /// runtime itself. A real `pthread_create` failure still throws.
    package convenience init(runtime name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        try self.init(name: name, injectable: false, body)
    }

    private init(name: String, injectable: Bool, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        self.name = name
        if injectable, FaultInjection.fires(.threadCreationFailure, { $0.threadCreationFailure }) {
            joined = true  // nothing to detach
            throw .resourceTemporarilyUnavailable  // as pthread_create when out of threads
        }
        let start = unsafe Unmanaged.passRetained(Start(self, body))
        let rc = unsafe pthread_create(&handle, nil, { raw in
            // SAFETY: the +1 passed below, taken exactly once by the new thread.
            let start = unsafe Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            start.thread.run(start.body)
            return nil
        }, start.toOpaque())
        guard rc == 0 else {
            // SAFETY: the new thread never started, so the +1 is still ours.
            unsafe start.release()
            joined = true  // nothing to detach
            throw Errno(rawValue: rc)
        }
    }

    deinit {
        guard !joined else { return }
        pthread_detach(handle)
        #if DEBUG
        KernelLog.standard.printk("irqemu: KThread \(name) released without a join: detached (leaked)")
        #endif
    }

    private func run(_ body: @Sendable () -> Void) {
        _ = unsafe name.withCString { unsafe CSupport_set_thread_name($0) }
        tidBox.withLock { $0 = CSupport_gettid() }
        body()
        state.withLock { finished = true }
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
    public var isFinished: Bool { state.withLock { finished } }

    /// Waits for the thread to finish (`kthread_stop`'s wait), up to `timeout` (no limit if
    /// nil; see `Deadline` for the policy). A thread that finished is joined exactly once;
    /// later joins return at once.
    ///
    /// - Throws: `atomicContext` in atomic context (a join sleeps: inside a read-side
    ///   section, a join of a thread that waits for a grace period would never return);
    ///   `wouldDeadlock` on the thread itself; `timedOut`. The thread was not joined.
    @available(*, noasync, message: "blocks the thread")
    public func join(timeout: Duration? = nil, file: StaticString = #fileID, line: UInt = #line) throws(WaitError) {
        do {
            try AtomicContext.mightSleep("KThread.join()", file: file, line: line)
        } catch { throw .atomicContext(error) }
        if isCurrent {
            AtomicContext.warn(
                .warning, ["WARNING: KThread \(name) joining itself would wait for itself"],
                function: "KThread.join()", log: nil, file: "\(file)", line: line)
            throw .wouldDeadlock(reason: "KThread \(name) joining itself")
        }
        let done = state.wait(until: .after(timeout)) { finished }
        guard done else { throw .timedOut(operation: "join of KThread \(name)", after: timeout ?? .zero) }
        let mustJoin = state.withLock { () -> Bool in
            defer { joined = true }
            return !joined
        }
        if mustJoin { pthread_join(handle, nil) }
    }
}
