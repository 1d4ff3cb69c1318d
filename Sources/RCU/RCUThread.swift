import CSupport
import Glibc
import KernelRuntime
import Synchronization

/// Registration of threads with liburcu.
///
/// liburcu requires every thread that takes a read lock to be registered first, aborts on
/// a second registration or unregistration of the same thread, and silently fails to
/// protect a read-side section on an unregistered thread. This type makes registration
/// idempotent and automatic: the first read lock on a thread registers it, and the thread
/// is unregistered when it exits (a pthread key destructor).
public enum RCUThread {
    @usableFromInline static let never: Int32 = 0
    @usableFromInline static let registered: Int32 = 1
    @usableFromInline static let exited: Int32 = 2
    @usableFromInline static let unregisteredByHand: Int32 = 3

    /// A pthread key whose destructor unregisters the thread at exit. Its value is only a
    /// marker that makes the destructor run.
    private static let exitKey: pthread_key_t = {
        var key = pthread_key_t()
        let rc = unsafe pthread_key_create(&key) { _ in
            if ThreadState.rcuRegistration == RCUThread.registered {
                CSupport_rcu_unregister_thread()
                ThreadState.rcuRegistration = RCUThread.exited
                RCUThread.unregisteredAtExit.add(1, ordering: .relaxed)
            }
        }
        precondition(rc == 0, "pthread_key_create: \(rc)")
        return key
    }()

    /// Threads unregistered by the exit destructor, process-wide (for the package's tests).
    package static let unregisteredAtExit = Atomic<Int>(0)

    /// liburcu's `call_rcu` threads do not survive `fork()`: its hooks pause them before
    /// and recreate them in the child. Installed once, with the first registration (every
    /// `call_rcu` comes from a registered thread).
    private static let forkHooks: Void = {
        let rc = CSupport_rcu_install_fork_hooks()
        precondition(rc == 0, "pthread_atfork: \(rc)")
    }()

    /// Whether the calling thread is registered with liburcu.
    public static var isRegistered: Bool { ThreadState.rcuRegistration == registered }

    /// Registers the calling thread with liburcu. Idempotent: calling it on a registered
    /// thread does nothing. A thread liburcu registered itself (its `call_rcu` thread) is
    /// adopted as it is, and left for liburcu to unregister.
    public static func register() {
        guard ThreadState.rcuRegistration != registered else { return }
        forkHooks
        if CSupport_rcu_thread_is_registered() {
            ThreadState.rcuRegistration = registered
            return
        }
        CSupport_rcu_register_thread()
        ThreadState.rcuRegistration = registered
        // SAFETY: the value is a non-nil marker, never dereferenced.
        _ = unsafe pthread_setspecific(exitKey, UnsafeRawPointer(bitPattern: 1))
    }

    /// Unregisters the calling thread. Idempotent. After it, a read lock on this thread
    /// traps until `register()` is called again: an unregistered reader would be silently
    /// unprotected. Does nothing on a thread liburcu registered itself.
    ///
    /// - Precondition: Not inside a read-side section.
    public static func unregister() {
        // SAFETY: only compares the key's marker value with nil.
        guard ThreadState.rcuRegistration == registered, unsafe pthread_getspecific(exitKey) != nil else { return }
        precondition(!CSupport_rcu_read_ongoing(), "RCUThread.unregister() inside an RCU read-side section")
        CSupport_rcu_unregister_thread()
        ThreadState.rcuRegistration = unregisteredByHand
    }

    /// The read lock's slow path: registers a thread on its first read lock, or traps on a
    /// thread that was unregistered by hand.
    @usableFromInline @inline(never)
    static func registerForReadLock() {
        precondition(
            ThreadState.rcuRegistration != unregisteredByHand,
            "RCU read lock on a thread unregistered with RCUThread.unregister(): it would not be protected"
        )
        register()
    }
}
