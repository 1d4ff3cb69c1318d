/// The lock validator: the kernel's lockdep (kernel/locking/lockdep.c) for irqemu's locks
/// and waits. It reports what could deadlock, on the first run that takes both paths,
/// whether or not they ever collide.
///
/// **What it tracks.** `SpinLock` (plain and irqsave), `SleepingMutex`, a mutex-strategy
/// `Revocable`'s (and so a mutex `Devres`'s) lock, whose reader's trylock fast path counts
/// as an acquisition; and waits, as acquisitions of what they wait for (pseudo-locks):
/// free_irq, synchronize_irq and disable_irq against the line's threaded handlers, an unbind
/// against `withBound` and `access(_:)` bodies, `Reaper.flush` against reaper work; and the
/// line's request mutex. `Completion` waits are not tracked (upstream dropped crossrelease
/// for its false positives). `ConditionLock` and `Lock` are the library's own internal
/// locks, never tracked.
///
/// **Classes.** A lock's class is its creation site (`#fileID:#line`), or a
/// `LockClassKey` given at creation; a Revocable's or Devres's mutex takes the class of its
/// `init` call site. Subclasses (`withLockNested(subclass:)`, 0 to 7) tell apart deliberate
/// nesting of one class. Two locks created on one line share a class.
///
/// **Reports**, in the kernel's words (see `LockdepProblem`): possible circular locking
/// dependency (with both chains and the unsafe scenario), possible recursive locking,
/// inconsistent lock state, irq-safe -> irq-unsafe order, irq lock inversion, and a table
/// overflow. Hard-IRQ context is a primary handler (the dispatcher); softirq is a
/// `call_rcu` callback; interrupts are on unless in a handler or `withIRQsDisabled` (or
/// `SpinLock.withLockIRQSave`). A spinlock taken in a handler and also with interrupts on
/// is reported even though irqemu, whose handlers run on their own threads, can never
/// deadlock on it.
///
/// **Behaviour.** Reports go where the atomic-context checker's go (the log given, the
/// device's or controller's, else the one in scope), are counted (`statistics`), obey
/// `panicOnReport`, and are made once per problem (per class pair, per usage conflict).
/// Unlike the kernel, which switches lockdep off after its first report, the validator
/// stays on after a report, so one run finds every problem; it switches itself off only
/// when a table overflows (`Limits`), as the kernel does. Acquisitions always proceed:
/// the validator never blocks, never fails a lock, never changes what the program does.
/// Its own state sits behind a raw internal lock that it never tracks.
///
/// **Cost.** On by default; off for the process with `isEnabled = false` or
/// `IRQEMU_LOCKDEP=0` (read once, at first use). An acquisition whose chain of held locks is
/// already known costs a few thread-local loads and stores, one atomic load of the class's
/// irq usage, and one probe of the chain hash (the kernel's chain-key cache): no lock and
/// no allocation. A new chain, a new usage bit or a new class takes the validator's lock.
/// Per thread: 48 held-lock records in thread-local storage (2.3 KiB).
///
/// Not tracked, stated: read locks (every lock is exclusive); irq-state changes while a
/// lock is held (irqemu's closure-scoped locks cannot outlive an irqs-off section); the
/// kernel's wait-context check (the atomic-context checker covers it).
public enum Lockdep {
    /// Whether the validator runs, process-wide. Starts as `IRQEMU_LOCKDEP` says (on unless
    /// it is `0`). Turning it on again after a table overflow does not clear the overflow:
    /// `reset` does.
    public static var isEnabled: Bool {
        get { LockdepGraph.shared.switches.load(ordering: .relaxed) & LockdepGraph.enabledBit != 0 }
        set {
            if newValue {
                LockdepGraph.shared.switches.bitwiseOr(LockdepGraph.enabledBit, ordering: .sequentiallyConsistent)
            } else {
                LockdepGraph.shared.switches.bitwiseAnd(~LockdepGraph.enabledBit, ordering: .sequentiallyConsistent)
            }
        }
    }

    /// Whether acquisitions are validated now: enabled, and not switched off by a table
    /// overflow (the kernel's `debug_locks`).
    public static var isActive: Bool { LockdepGraph.shared.isOn }

    /// The tables' limits in force.
    public static var limits: Limits { LockdepGraph.shared.lock.withLock { LockdepGraph.shared.limits } }

    /// What the validator holds and has reported.
    public static var statistics: Statistics { LockdepGraph.shared.statistics }

    /// Forgets every class, dependency, chain and reported problem, and lifts an
    /// overflow's switch-off: a harness that runs independent scenarios in one process
    /// starts each from a validator that knows nothing (a problem is reported once until
    /// then). Locks held across the reset are forgotten too: reset only when no scenario is
    /// running. The kernel has no counterpart: its lockdep lives as long as the machine.
    public static func reset() {
        reset(limits: .kernel)
    }

    /// `reset()`, with `limits` (clamped to the kernel's), for tests of the limits.
    package static func reset(limits: Limits) {
        LockdepGraph.shared.reset(limits: limits)
    }

    // MARK: - Assertions and annotations

    /// `lockdep_assert_held`: a WARN (once per call site) unless the calling thread holds
    /// `lock`. Passes silently while the validator is not active.
    public static func assertHeld(_ lock: some ValidatedLock, file: StaticString = #fileID, line: UInt = #line) {
        assertHeld(lock.lockdepMap, file: file, line: line)
    }

    /// `lockdep_assert_held` on a map (a Revocable's, a pseudo-lock).
    public static func assertHeld(_ map: LockdepMap, file: StaticString = #fileID, line: UInt = #line) {
        guard LockdepGraph.shared.isHeld(map) == false else { return }
        assertionFailed("Lockdep.assertHeld(_:)", map: map, file: file, line: line)
    }

    /// `lockdep_assert_not_held`: a WARN (once per call site) if the calling thread holds
    /// `lock`.
    public static func assertNotHeld(_ lock: some ValidatedLock, file: StaticString = #fileID, line: UInt = #line) {
        guard LockdepGraph.shared.isHeld(lock.lockdepMap) == true else { return }
        assertionFailed("Lockdep.assertNotHeld(_:)", map: lock.lockdepMap, file: file, line: line)
    }

    /// `lockdep_is_held`: whether the calling thread holds `lock`; nil while the validator
    /// is not active (`LOCK_STATE_UNKNOWN`).
    public static func isHeld(_ lock: some ValidatedLock) -> Bool? { LockdepGraph.shared.isHeld(lock.lockdepMap) }

    /// `might_lock`: validates taking `lock` here (dependencies, irq usage) without taking
    /// it, for a path that takes it only sometimes.
    public static func mightLock(_ lock: some ValidatedLock, subclass: Int = 0, file: StaticString = #fileID, line: UInt = #line) {
        acquire(lock.lockdepMap, subclass: subclass, function: "might_lock", file: file, line: line)
        release(lock.lockdepMap)
    }

    /// `lock_map_acquire` … `lock_map_release`: runs `body` holding the pseudo-lock `map`,
    /// so what `body` takes is ordered after it. Pair with `noteWait(for:)` where the wait
    /// for `body`'s code happens.
    public static func withHeld<R, E: Error>(
        _ map: LockdepMap, file: StaticString = #fileID, line: UInt = #line, _ body: () throws(E) -> R
    ) throws(E) -> R {
        acquire(map, function: "lock_map_acquire", file: file, line: line)
        defer { release(map) }
        return try body()
    }

    /// A wait for the code that runs under `map` (`withHeld`): an acquisition and release
    /// of it, so the locks held here are ordered before it.
    public static func noteWait(for map: LockdepMap, file: StaticString = #fileID, line: UInt = #line) {
        acquire(map, function: "lock_map_acquire", file: file, line: line)
        release(map)
    }

    // MARK: - For the locks and waits of the layers above

    /// `lock_acquire`. `trylock`: an acquisition that never waits (a `withBound` or
    /// `access(_:)` body's pseudo-lock): no dependency is recorded into it, nor is it
    /// reported as recursive, but what is taken under it depends on it.
    ///
    /// `instance` names the lock when many share one map (a class shared by every lock
    /// made at one site, as a Revocable's mutex does to stay small); by default the map
    /// itself is the instance.
    @usableFromInline @safe
    package static func acquire(
        _ map: LockdepMap, instance: UnsafeRawPointer? = nil, subclass: Int = 0, trylock: Bool = false,
        function: StaticString, file: StaticString, line: UInt, log: KernelLog? = nil
    ) {
        LockdepGraph.shared.acquire(
            map, instance: instance, subclass: subclass, trylock: trylock, site: LockSite(file, line),
            function: function, log: log)
    }

    /// `lock_release`: guards may be released in any order. `instance` as for `acquire`.
    @usableFromInline @safe
    package static func release(_ map: LockdepMap, instance: UnsafeRawPointer? = nil) {
        LockdepGraph.shared.release(map, instance: instance)
    }

    /// A wait for what runs under `map`, reported at the caller's site (a string).
    package static func noteWait(for map: LockdepMap, function: StaticString, file: String, line: UInt, log: KernelLog?) {
        let graph = LockdepGraph.shared
        guard graph.isOn else { return }
        graph.acquire(map, subclass: 0, trylock: false, site: LockSite(text: file, line: line), function: function, log: log)
        graph.release(map)
    }

    /// The class names of the locks the calling thread holds, oldest first (with
    /// `/subclass`), as the validator recorded them.
    package static var heldLockNames: [String] {
        let graph = LockdepGraph.shared
        return graph.lock.withLock {
            let generation = graph.generation.load(ordering: .relaxed)
            let depth = Int(unsafe ThreadState.current.pointee.lockdep_depth)
            return (0..<depth).map(LockdepGraph.held).map { entry in
                entry.generation == generation && Int(entry.classIndex) < graph.classes.count
                    ? graph.name(entry.classIndex) : "(stale)"
            }
        }
    }

    /// Whether the problem named `key` is reported for the first time (then it is recorded:
    /// later calls return false until `reset`). For checkers that report once per problem
    /// as the validator does, and forget with it (the teardown-order check).
    package static func isFirstReport(of key: String) -> Bool {
        let graph = LockdepGraph.shared
        return graph.lock.withLock { graph.reported.insert(.other(key)).inserted }
    }

    /// Whether the calling thread holds `map` (false while the validator is not active).
    @safe
    package static func holds(_ map: LockdepMap, instance: UnsafeRawPointer? = nil) -> Bool {
        LockdepGraph.shared.isHeld(map, instance: instance) == true
    }

    /// The report of a relock that the caller refuses (a Revocable's mutex taken again by
    /// its holder, a work item waiting for itself): lockdep's `possible recursive locking
    /// detected`, made whether or not the validator is active, every time (it is a refusal,
    /// not a possibility), and counted as `.recursive`. The validator itself never sees the
    /// refused acquisition. `instance`: the lock's address when many share `map` (as for
    /// `acquire`); `note` ends the report.
    package static func recursiveLockingRefused(
        _ map: LockdepMap, instance: UInt? = nil, function: String, note: String? = nil,
        log: KernelLog?, file: String, line: UInt
    ) -> KernelReport {
        let graph = LockdepGraph.shared
        var lines = graph.lock.withLock { () -> [String] in
            graph.count(.recursive)
            let depth = Int(unsafe ThreadState.current.pointee.lockdep_depth)
            let instance = instance ?? map.instanceBits
            var prevSite = "?"
            var i = depth - 1
            while i >= 0 {
                let entry = LockdepGraph.held(i)
                if entry.instance == instance {
                    prevSite = entry.site.description
                    break
                }
                i -= 1
            }
            let registered = graph.registeredClass(map)
            let usage = registered.map { LockUsage.string(graph.usage($0)) } ?? "{....}"
            let name = registered.map { graph.name($0) } ?? map.name
            let full = "(\(name))\(usage)-\(map.type.waitContext)"
            let hex = LockdepGraph.hex(instance)
            return graph.recursiveLines(
                next: "\(hex) \(full), at: \(file):\(line)", prev: "\(hex) \(full), at: \(prevSite)",
                nextName: name, prevName: name, depth: depth)
        }
        if let note { lines.append(note) }
        return AtomicContext.warn(.lockdep, lines, function: function, log: log, file: file, line: line)
    }

    /// A failed assertion: the kernel's WARN, once per call site.
    private static func assertionFailed(_ function: String, map: LockdepMap, file: StaticString, line: UInt) {
        let graph = LockdepGraph.shared
        let first = graph.lock.withLock { () -> Bool in
            guard graph.reported.insert(.assertion("\(file):\(line)")).inserted else { return false }
            graph.count(.assertion)
            return true
        }
        guard first else { return }
        AtomicContext.warn(
            .lockdep,
            [
                "------------[ cut here ]------------",
                "WARNING: CPU: \(max(ThreadState.cpu, 0)) PID: \(ThreadState.tid) at \(file):\(line) \(function)",
                "lock: \(map.className)",
            ],
            trailing: ["---[ end trace 0000000000000000 ]---"],
            function: function, log: nil, file: "\(file)", line: line)
    }
}

/// A lock the validator tracks: it owns a `LockdepMap`.
public protocol ValidatedLock: AnyObject {
    /// The lock's class and identity for the validator.
    var lockdepMap: LockdepMap { get }
}
