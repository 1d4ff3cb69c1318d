import CSupport

/// The calling thread's emulated-kernel state: RCU registration, hard-IRQ and spinlock
/// nesting, the emulated CPU, the log in scope.
///
/// Stored in C thread-local storage (`CSupport_tls`), so every access is one `%fs`-relative
/// load with no lock and no allocation. Only this type touches that storage.
@usableFromInline
package enum ThreadState {
    // SAFETY: `CSupport_this_thread()` returns the address of the calling thread's own
    // `__thread` struct. It is valid for the life of the thread and never shared, so plain
    // loads and stores through it cannot race.
    @inlinable
    package static var current: UnsafeMutablePointer<CSupport_thread_state> {
        @inline(__always) get { unsafe CSupport_this_thread() }
    }

    @inlinable
    package static var rcuRegistration: Int32 {
        @inline(__always) get { unsafe current.pointee.rcu_registration }
        set { unsafe current.pointee.rcu_registration = newValue }
    }

    package static var hardIRQ: Int32 {
        get { unsafe current.pointee.hardirq }
        set { unsafe current.pointee.hardirq = newValue }
    }

    package static var softIRQ: Int32 {
        get { unsafe current.pointee.softirq }
        set { unsafe current.pointee.softirq = newValue }
    }

    package static var preempt: Int32 {
        get { unsafe current.pointee.preempt }
        set { unsafe current.pointee.preempt = newValue }
    }

    package static var irqsOff: Int32 {
        get { unsafe current.pointee.irqs_off }
        set { unsafe current.pointee.irqs_off = newValue }
    }

    /// The emulated CPU a dispatcher (or per-CPU kworker) thread stands for, or -1 on any
    /// other thread.
    package static var cpu: Int32 {
        get { unsafe current.pointee.cpu }
        set { unsafe current.pointee.cpu = newValue }
    }

    package static var gracePeriods: UInt64 {
        get { unsafe current.pointee.grace_periods }
        set { unsafe current.pointee.grace_periods = newValue }
    }

    /// Unretained; whoever sets it keeps the object alive while it is set.
    package static var log: UnsafeMutableRawPointer? {
        get { unsafe current.pointee.log }
        set { unsafe current.pointee.log = newValue }
    }

    /// Unretained identity of the IRQ thread running on this thread, if any.
    package static var irqThread: UnsafeMutableRawPointer? {
        get { unsafe current.pointee.irq_thread }
        set { unsafe current.pointee.irq_thread = newValue }
    }

    /// Unretained mark of the IRQ handler running on this thread (the teardown-order
    /// check's), or nil.
    package static var runningHandler: UnsafeMutableRawPointer? {
        @inline(__always) get { unsafe current.pointee.running_handler }
        @inline(__always) set { unsafe current.pointee.running_handler = newValue }
    }

    /// Unretained device whose driver callback (probe, remove, release) runs on this
    /// thread, or nil.
    package static var deviceScope: UnsafeMutableRawPointer? {
        get { unsafe current.pointee.device_scope }
        set { unsafe current.pointee.device_scope = newValue }
    }

    // MARK: The lock validator's held locks

    /// The calling thread's `CSUPPORT_LOCKDEP_MAX_DEPTH` held-lock records, oldest first
    /// (`lockdepDepth` of them in use).
    // SAFETY: the calling thread's own fixed array (see `current`).
    static var lockdepHeld: UnsafeMutablePointer<CSupport_held_lock> {
        @inline(__always) get { unsafe CSupport_this_thread_lockdep_held() }
    }

    // MARK: Locks held for a reader

    /// Whether the thread holds any lock recorded with `pushHeldLock` (one load).
    @inlinable
    package static var holdsLocks: Bool { unsafe current.pointee.held_lock_count != 0 }

    /// Records that the thread took `lock` for a reader (a Revocable's mutex), so taking
    /// it again on this thread can be refused instead of deadlocking. Up to 8 are
    /// remembered; deeper nesting is counted but not checked.
    @inlinable
    package static func pushHeldLock(_ lock: UnsafeMutableRawPointer) {
        let n = Int(unsafe current.pointee.held_lock_count)
        if n < 8 { unsafe heldLocks[n] = lock }
        unsafe current.pointee.held_lock_count = Int32(n + 1)
    }

    /// Forgets `lock`: its newest record, wherever it is (guards may be released in any
    /// order), or, if it was not recorded (nested deeper than 8), one of the unrecorded.
    @inlinable
    package static func popHeldLock(_ lock: UnsafeMutableRawPointer) {
        let n = Int(unsafe current.pointee.held_lock_count)
        let recorded = min(n, 8)
        var i = recorded - 1
        while i >= 0, unsafe heldLocks[i] != lock { i -= 1 }
        if i >= 0 {
            for j in i..<(recorded - 1) { unsafe heldLocks[j] = unsafe heldLocks[j + 1] }
            // The 9th, if any, moves into the last slot, but was never recorded.
            unsafe heldLocks[recorded - 1] = nil
        }
        unsafe current.pointee.held_lock_count = Int32(n - 1)
    }

    /// Whether `lock` is among the locks the thread recorded.
    package static func holdsLock(_ lock: UnsafeMutableRawPointer) -> Bool {
        let n = min(Int(unsafe current.pointee.held_lock_count), 8)
        for i in 0..<n where unsafe heldLocks[i] == lock { return true }
        return false
    }

    // SAFETY: the calling thread's own fixed array of 8 pointers (see `current`).
    @inlinable
    static var heldLocks: UnsafeMutablePointer<UnsafeMutableRawPointer?> {
        unsafe CSupport_this_thread_held_locks()
    }

    /// The kernel thread id (what the kernel's reports print as `pid`).
    package static var tid: Int32 {
        let cached = unsafe current.pointee.tid
        if _fastPath(cached != 0) { return cached }
        let tid = CSupport_gettid()
        unsafe current.pointee.tid = tid
        return tid
    }

    /// The thread's name as `prctl(PR_GET_NAME)` reports it (the kernel's `comm`).
    package static var name: String {
        var buffer = [CChar](repeating: 0, count: 17)
        let ok = unsafe buffer.withUnsafeMutableBufferPointer { unsafe CSupport_get_thread_name($0.baseAddress!) == 0 }
        guard ok else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
