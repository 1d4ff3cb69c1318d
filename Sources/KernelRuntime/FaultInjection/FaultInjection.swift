import Glibc
import Synchronization
import SystemPackage

/// Seeded fault injection: the place every injection site asks "does this fault fire
/// now?", and the scopes that say which `Faults` apply.
///
/// Off (every knob off), a site costs one relaxed atomic load. On, a decision costs a
/// thread-local lookup and a hash. The inlined RCU read path never asks: reader preemption
/// rides on the read lock's existing slow path (see `Faults.readerPreemption`).
public enum FaultInjection {
    /// Where a fault is injected. Part of each decision's hash, so sites draw independently.
    public enum Site: Int, Sendable, CaseIterable {
        /// After a grace period irqemu waited for (`Faults.gracePeriod`).
        case gracePeriod
        /// Before a `call_rcu` callback (`Faults.callback`).
        case callback
        /// Inside a read-side section (`Faults.readerPreemption`).
        case readerPreemption
        /// Before a primary handler (`Faults.primaryHandler`).
        case primaryHandler
        /// Before a threaded handler (`Faults.threadedHandler`).
        case threadedHandler
        /// Inside free_irq, before its wait (`Faults.freeIRQWait`).
        case freeIRQWait
        /// An edge delivered twice (`Faults.duplicateEdge`).
        case duplicateEdge
        /// An interrupt no device raised (`Faults.spuriousInterrupt`).
        case spuriousInterrupt
        /// request_irq failing with ENOMEM (`Faults.requestFailure`).
        case requestFailure
        /// `Devres` creation failing with ENOMEM (`Faults.devresFailure`).
        case devresFailure
        /// A thread that cannot be created (`Faults.threadCreationFailure`).
        case threadCreationFailure
        /// Before a work item runs (`Faults.workItem`).
        case workItem
        /// A delayed-work timer firing late (`Faults.timerJitter`).
        case timerJitter
    }

    private static let state = LockedValue(Faults.none)
    /// Whether any fault may be active anywhere: the process's, or a device's or
    /// controller's (set once one is created with faults, never cleared).
    private static let anyActive = Atomic<Bool>(false)
    private static let environmentRead = Atomic<Bool>(false)

    /// The process-wide configuration. Initially what `IRQEMU_FAULTS` says (read on first
    /// use; a malformed value is reported to `KernelLog.standard` and ignored), else none.
    public static var process: Faults {
        get {
            readEnvironmentOnce()
            return state.withLock { $0 }
        }
        set {
            readEnvironmentOnce()
            state.withLock { $0 = newValue }
            if newValue.isActive { anyActive.store(true, ordering: .releasing) }
        }
    }

    private static func readEnvironmentOnce() {
        guard !environmentRead.exchange(true, ordering: .acquiringAndReleasing) else { return }
        guard let raw = unsafe getenv("IRQEMU_FAULTS") else { return }
        let text = unsafe String(cString: raw)
        do throws(Errno) {
            let faults = try Faults(parsing: text)
            state.withLock { $0 = faults }
            if faults.isActive { anyActive.store(true, ordering: .releasing) }
        } catch {
            KernelLog.standard.printk("irqemu: IRQEMU_FAULTS=\(text) not understood (\(error)); no faults injected")
        }
    }

    /// Notes that a scope with `faults` exists (a device or controller made with them), so
    /// the sites start asking.
    package static func scopeCreated(_ faults: Faults?) {
        if faults?.isActive == true { anyActive.store(true, ordering: .releasing) }
    }

    /// Whether any fault may be active anywhere (one relaxed load): sites whose injection
    /// costs more than a decision (a lock dropped) ask first.
    package static var mayInject: Bool { anyActive.load(ordering: .relaxed) }

    /// The faults in effect on the calling thread: the innermost scope's, else the
    /// process's.
    public static var current: Faults {
        readEnvironmentOnce()
        guard anyActive.load(ordering: .relaxed) else { return .none }
        return PerThread.current.scope ?? process
    }

    /// Runs `body` with `faults` as the calling thread's scope (a device's during its
    /// callbacks and handlers, a controller's on its CPUs). Nil leaves the scope as it is.
    @inline(__always)
    package static func withScope<R, E: Error>(_ faults: Faults?, _ body: () throws(E) -> R) throws(E) -> R {
        guard let faults else { return try body() }
        let thread = PerThread.current
        let previous = thread.scope
        thread.scope = faults
        defer { thread.scope = previous }
        return try body()
    }

    /// The faults in effect: the calling thread's scope, else `fallback` (a controller's or
    /// device's, for a call on it), else the process's.
    package static func current(fallback: Faults?) -> Faults {
        guard anyActive.load(ordering: .relaxed) else { return .none }
        return PerThread.current.scope ?? fallback ?? process
    }

    /// Whether the fault at `site` fires now, given `probability` of the faults in effect
    /// (`fallback` applies where the thread has no scope of its own). Deterministic per
    /// (seed, site, thread name, this thread's count at the site).
    package static func fires(_ site: Site, fallback: Faults? = nil, _ probability: (Faults) -> Double) -> Bool {
        guard anyActive.load(ordering: .relaxed) else { return false }
        let faults = current(fallback: fallback)
        let p = probability(faults)
        guard p > 0 else { return false }
        return PerThread.current.draw(site, seed: faults.seed) < p
    }

    /// Injects the delay at `site` if it fires: a spin (`spinning`, for contexts that may
    /// not sleep), a yield (maximum zero) or a sleep of up to its maximum.
    package static func delay(
        _ site: Site, spinning: Bool = false, fallback: Faults? = nil, _ knob: (Faults) -> Faults.Delay?
    ) {
        guard anyActive.load(ordering: .relaxed) else { return }
        let faults = current(fallback: fallback)
        guard let delay = knob(faults), delay.probability > 0 else { return }
        let thread = PerThread.current
        guard thread.draw(site, seed: faults.seed) < delay.probability else { return }
        let ns = UInt64(thread.draw(site, seed: faults.seed &+ 1) * Double(delay.maximum.clampedNanoseconds))
        if ns == 0 {
            sched_yield()
        } else if spinning {
            let end = monotonicNanoseconds() &+ ns
            while monotonicNanoseconds() < end {}
        } else {
            var ts = Deadline(nanoseconds: monotonicNanoseconds() &+ ns).timespec
            while unsafe clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
        }
    }

    /// Draws the calling thread has made at `site` (a decision, and a delay's length when
    /// one fires): for tests that check a site is asked, and how often.
    package static func draws(at site: Site) -> UInt64 {
        guard anyActive.load(ordering: .relaxed) else { return 0 }
        return PerThread.current.counts[site.rawValue]
    }

    /// The line reports add while faults are in effect: the seed and the knobs, so a run
    /// that found something can be repeated.
    package static var reportLine: String? {
        guard anyActive.load(ordering: .relaxed) else { return nil }
        let faults = current
        return faults.isActive ? "irqemu: faults injected: \(faults)" : nil
    }

    /// A thread's decision counters and scope, made on its first decision.
    private final class PerThread {
        var scope: Faults?
        var counts = [UInt64](repeating: 0, count: Site.allCases.count)
        let nameHash: UInt64

        init() {
            // The thread's name, as set when it started (KThread names its thread first).
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in ThreadState.name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            nameHash = hash
        }

        /// A uniform draw in [0, 1): splitmix64 of (seed, site, name, count).
        func draw(_ site: Site, seed: UInt64) -> Double {
            let count = counts[site.rawValue]
            counts[site.rawValue] = count &+ 1
            var z = seed ^ (UInt64(site.rawValue + 1) &* 0x9E37_79B9_7F4A_7C15) ^ nameHash ^ (count &* 0xD1B5_4A32_D192_ED03)
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Double(z >> 11) / Double(1 << 53)
        }

        private static let key: pthread_key_t = {
            var key = pthread_key_t()
            let rc = unsafe pthread_key_create(&key) { raw in
                // SAFETY: the +1 stored by `current`, released once, at thread exit.
                if let raw = unsafe raw { unsafe Unmanaged<PerThread>.fromOpaque(raw).release() }
            }
            precondition(rc == 0, "pthread_key_create: \(rc)")
            return key
        }()

        static var current: PerThread {
            if let raw = unsafe pthread_getspecific(key) {
                // SAFETY: stored below with a +1 that the key's destructor releases.
                return unsafe Unmanaged<PerThread>.fromOpaque(raw).takeUnretainedValue()
            }
            let made = PerThread()
            _ = unsafe pthread_setspecific(key, Unmanaged.passRetained(made).toOpaque())
            return made
        }
    }
}
