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
///
/// The registration state lives in `ThreadState.rcuRegistration`, and the inlined read lock
/// tests it for exactly `registered` (one thread-local load and a branch); every other
/// value takes the out-of-line slow path, `registerForReadLock()`. A thread that registers
/// while `Faults.readerPreemption` is in effect is `registeredFaulty`: its read locks all
/// take the slow path, which injects the preemption, and the inlined code of every other
/// thread stays as it is (one comparison, whatever the faults).
public enum RCUThread {
    @usableFromInline static let never: Int32 = 0
    @usableFromInline static let registered: Int32 = 1
    @usableFromInline static let exited: Int32 = 2
    @usableFromInline static let unregisteredByHand: Int32 = 3
    /// Registered, with reader preemption in effect when it registered: every read lock
    /// takes the slow path (`preemptReader()`).
    @usableFromInline static let registeredFaulty: Int32 = 5

    /// Whether `state` is registered, faulty or not.
    private static func isRegistered(_ state: Int32) -> Bool { state == registered || state == registeredFaulty }

    /// The state a thread registering now gets: faulty when reader preemption is in effect
    /// on it (its scope's faults, else the process's), else plain registered. One relaxed
    /// load when no fault was ever configured.
    private static var registeredState: Int32 {
        guard FaultInjection.mayInject, FaultInjection.current.readerPreemption != nil else { return registered }
        return registeredFaulty
    }

    /// A pthread key whose destructor unregisters the thread at exit. Its value is only a
    /// marker that makes the destructor run.
    private static let exitKey: pthread_key_t = {
        var key = pthread_key_t()
        let rc = unsafe pthread_key_create(&key) { _ in
            if RCUThread.isRegistered(ThreadState.rcuRegistration) {
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
    public static var isRegistered: Bool { isRegistered(ThreadState.rcuRegistration) }

    /// Registers the calling thread with liburcu. Idempotent: calling it on a registered
    /// thread does nothing. A thread liburcu registered itself (its `call_rcu` thread) is
    /// adopted as it is, and left for liburcu to unregister.
    ///
    /// With `Faults.readerPreemption` in effect on the thread, its read locks from then on
    /// inject the preemption (see `registerForReadLock()`).
    public static func register() {
        guard !isRegistered(ThreadState.rcuRegistration) else { return }
        forkHooks
        if CSupport_rcu_thread_is_registered() {
            ThreadState.rcuRegistration = registeredState
            return
        }
        CSupport_rcu_register_thread()
        ThreadState.rcuRegistration = registeredState
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
        guard isRegistered(ThreadState.rcuRegistration), unsafe pthread_getspecific(exitKey) != nil else { return }
        precondition(!CSupport_rcu_read_ongoing(), "RCUThread.unregister() inside an RCU read-side section")
        CSupport_rcu_unregister_thread()
        ThreadState.rcuRegistration = unregisteredByHand
    }

    /// The read lock's slow path, taken whenever the thread's state is not `registered`:
    /// registers a thread on its first read lock, traps on a thread that was unregistered
    /// by hand, and injects reader preemption on a faulty thread (`registeredFaulty`). The
    /// inlined read lock follows it.
    @usableFromInline @inline(never)
    static func registerForReadLock() {
        if ThreadState.rcuRegistration != registeredFaulty {
            precondition(
                ThreadState.rcuRegistration != unregisteredByHand,
                "RCU read lock on a thread unregistered with RCUThread.unregister(): it would not be protected"
            )
            register()
            guard ThreadState.rcuRegistration == registeredFaulty else { return }
        }
        preemptReader()
    }

    /// Reader preemption (`Faults.readerPreemption`, decided by the faults in effect now):
    /// a yield or sleep inside a read-side section, entered here, just before the caller's.
    ///
    /// The inlined read lock that follows cannot be changed for a faulty thread alone, so
    /// the delay's section is the slow path's own: it ends here, and the caller's begins a
    /// few instructions later. To a writer this is the caller's section beginning with the
    /// delay: a grace period that starts during it waits for it. To the reader it is too:
    /// nothing reached through RCU is held yet at the top of a section. Inside an outer
    /// section (a nested read lock) the delay simply runs in that section. In hard-IRQ
    /// context the delay spins, as the primary handler's does.
    static func preemptReader() {
        CSupport_rcu_read_lock()
        FaultInjection.delay(.readerPreemption, spinning: AtomicContext.inHardIRQ) { $0.readerPreemption }
        CSupport_rcu_read_unlock()
    }
}
