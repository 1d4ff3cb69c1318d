import CSupport
import Glibc
import Synchronization

/// The lock validator's state, process-wide: the classes, the dependency graph, the chain
/// cache, and what was reported. `Lockdep` is its public face.
///
/// The hot path reads only lock-free state: the switches, the generation, each class's
/// usage bits and the chain cache (an open-addressing set of chain keys). Everything else
/// is guarded by `lock`, a raw pthread mutex that the validator never tracks and that never
/// calls out (reports are recorded after it is released).
///
/// - Complexity: 1 MiB for the chain cache and 32 KiB of usage bits, allocated at the first
///   acquisition; the graph grows with the classes and dependencies seen (see
///   `Lockdep.Limits`).
@safe
final class LockdepGraph: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the atomics and the two fixed buffers of atomics are
    // shared lock-free; every `var` is only touched with `lock` held.

    static let shared = LockdepGraph()

    /// Set by `Lockdep.isEnabled` (and `IRQEMU_LOCKDEP`).
    static let enabledBit: UInt32 = 1
    /// Set when a table overflowed (the kernel's `debug_locks = 0`), cleared by `reset`.
    static let offBit: UInt32 = 2
    /// Chain-cache slots: twice the most chains, so probes stay short.
    static let chainSlots = 1 << 17
    /// Classes the usage-bit buffer holds.
    static let classSlots = 8192

    let switches: Atomic<UInt32>
    /// Bumped by `reset`: class caches and held records of an older generation are ignored.
    let generation = Atomic<UInt32>(1)
    let depthLimit = Atomic<Int>(Int(CSUPPORT_LOCKDEP_MAX_DEPTH))
    /// Usage bits per class, readable without the lock.
    private let usageMasks: UnsafeMutablePointer<Atomic<UInt32>>
    /// Chain keys seen; 0 marks an empty slot. Written under `lock`, read without it.
    private let chainCache: UnsafeMutablePointer<Atomic<UInt64>>

    let lock = Lock()
    var limits = Lockdep.Limits.kernel
    var classes: [LockClass] = []
    var classByKey: [ClassKey: UInt32] = [:]
    var dependencies: Set<UInt64> = []
    var chainCount = 0
    var chainLockCount = 0
    var traces: [LockTrace] = []
    /// Problems already reported: each is reported once.
    var reported: Set<ProblemKey> = []
    var reportCounts: [LockdepProblem: Int] = [:]
    // Breadth-first search scratch, reused (see `search`).
    var visited: [UInt32] = []
    var parent: [UInt32] = []
    var parentTrace: [UInt32] = []
    var queue: [UInt32] = []
    var epoch: UInt32 = 0

    struct ClassKey: Hashable {
        let name: String
        let subclass: Int
    }

    enum ProblemKey: Hashable {
        case recursive(UInt32)
        case circular(UInt32, UInt32)
        case safeToUnsafe(UInt32, UInt32, Int)
        case inversion(UInt32, UInt32, Int)
        case assertion(String)
        /// Another checker's problem (the teardown-order check's).
        case other(String)
    }

    private init() {
        // Read once, at first use: IRQEMU_LOCKDEP=0 turns the validator off for the process.
        let variable = unsafe getenv("IRQEMU_LOCKDEP").map { unsafe String(cString: $0) }
        switches = Atomic(variable == "0" ? 0 : Self.enabledBit)
        unsafe usageMasks = .allocate(capacity: Self.classSlots)
        for i in 0..<Self.classSlots { unsafe (usageMasks + i).initialize(to: Atomic(0)) }
        unsafe chainCache = .allocate(capacity: Self.chainSlots)
        for i in 0..<Self.chainSlots { unsafe (chainCache + i).initialize(to: Atomic(0)) }
    }

    // MARK: - Lock-free reads

    /// Enabled and not switched off.
    @inline(__always)
    var isOn: Bool { switches.load(ordering: .relaxed) == Self.enabledBit }

    @inline(__always)
    func usage(_ index: UInt32) -> UInt32 {
        // SAFETY: `index` < classSlots (classes never exceed `Limits.classes` ≤ classSlots).
        unsafe (usageMasks + Int(index)).pointee.load(ordering: .relaxed)
    }

    func setUsage(_ index: UInt32, _ mask: UInt32) {
        // SAFETY: as in `usage`.
        unsafe (usageMasks + Int(index)).pointee.store(mask, ordering: .relaxed)
    }

    /// Whether `key` is a known chain: one probe, rarely more.
    @inline(__always)
    func chainIsKnown(_ key: UInt64) -> Bool {
        var slot = Int(truncatingIfNeeded: key) & (Self.chainSlots - 1)
        while true {
            // SAFETY: `slot` is masked into the buffer.
            let found = unsafe (chainCache + slot).pointee.load(ordering: .acquiring)
            if found == key { return true }
            if found == 0 { return false }
            slot = (slot + 1) & (Self.chainSlots - 1)
        }
    }

    /// Adds a chain key. Lock held; the table is never more than half full.
    func insertChain(_ key: UInt64) {
        var slot = Int(truncatingIfNeeded: key) & (Self.chainSlots - 1)
        // SAFETY: as in `chainIsKnown`.
        while unsafe (chainCache + slot).pointee.load(ordering: .relaxed) != 0 {
            slot = (slot + 1) & (Self.chainSlots - 1)
        }
        unsafe (chainCache + slot).pointee.store(key, ordering: .releasing)
    }

    /// The chain key after `key` with lock `id` taken (a 64-bit mix; never 0).
    @inline(__always)
    static func mix(_ key: UInt64, _ id: UInt64) -> UInt64 {
        var z = (key ^ 0x9E37_79B9_7F4A_7C15) &+ (id &+ 1) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 30)) &* 0x94D0_49BB_1331_11EB
        z = (z ^ (z >> 27)) &* 0x9E37_79B9_7F4A_7C15
        z ^= z >> 31
        return z == 0 ? 1 : z
    }

    /// The key a chain starts from (the kernel's `INITIAL_CHAIN_KEY`), per generation.
    @inline(__always)
    static func initialKey(_ generation: UInt32) -> UInt64 { mix(~0, UInt64(generation) << 40) }

    // MARK: - Held-lock records

    static let trylockFlag: UInt32 = 1
    static let contextShift: UInt32 = 1
    static let irqsOffFlag: UInt32 = 8

    @inline(__always)
    static func context(_ flags: UInt32) -> UInt32 { (flags >> contextShift) & 3 }

    /// The calling thread's record `i`, copied out.
    static func held(_ i: Int) -> HeldLock { unsafe HeldLock(ThreadState.lockdepHeld[i]) }

    // MARK: - Acquire and release (the hot path)

    /// Records that the calling thread takes `map` (`lock_acquire`): marks the class's irq
    /// usage, and validates the chain of held locks unless it is already known. Never
    /// blocks and never fails: the acquisition goes ahead whatever is found.
    @inline(__always) @safe
    func acquire(
        _ map: LockdepMap, instance: UnsafeRawPointer? = nil, subclass: Int, trylock: Bool, site: LockSite,
        function: StaticString, log: KernelLog?
    ) {
        guard isOn else { return }
        let generation = self.generation.load(ordering: .relaxed)
        let index: UInt32
        if let cached = map.cachedClass(subclass, generation: generation) {
            index = cached
        } else {
            guard let found = lookUpClass(map, subclass: subclass, site: site, function: function, log: log) else { return }
            index = found
        }
        let thread = unsafe ThreadState.current
        let depth = Int(unsafe thread.pointee.lockdep_depth)
        let hardIRQ = unsafe thread.pointee.hardirq, softIRQ = unsafe thread.pointee.softirq
        let irqsOff = unsafe thread.pointee.irqs_off
        let irqsOn = hardIRQ == 0 && irqsOff == 0
        let instanceBits = unsafe instance.map { UInt(bitPattern: $0) } ?? map.instanceBits
        let acquisition = Acquisition(
            instance: instanceBits, classIndex: index, trylock: trylock,
            context: (hardIRQ > 0 ? 2 : 0) | (softIRQ > 0 ? 1 : 0),
            hardIRQ: hardIRQ, softIRQ: softIRQ, irqsOn: irqsOn, site: site, function: function, log: log)
        // As the kernel: the lock that would make the depth reach the limit trips it.
        if _slowPath(depth + 1 >= depthLimit.load(ordering: .relaxed)) {
            depthOverflow(acquisition, depth: depth)
            return
        }
        var needed = LockUsage.flag(LockUsage.used)
        if !trylock {
            if hardIRQ > 0 { needed |= LockUsage.flag(LockUsage.usedInHardIRQ) }
            if softIRQ > 0 { needed |= LockUsage.flag(LockUsage.usedInSoftIRQ) }
        }
        if irqsOn {
            needed |= LockUsage.flag(LockUsage.enabledHardIRQ)
            if softIRQ == 0 { needed |= LockUsage.flag(LockUsage.enabledSoftIRQ) }
        }
        if _slowPath(usage(index) & needed != needed) { markUsage(acquisition, needed: needed, generation: generation) }
        unsafe push(acquisition, thread: thread, depth: depth, generation: generation)
    }

    /// Pushes a record, with the chain validated first if it is new.
    @inline(__always)
    private func push(
        _ a: Acquisition, thread: UnsafeMutablePointer<CSupport_thread_state>, depth: Int, generation: UInt32
    ) {
        let held = unsafe ThreadState.lockdepHeld
        let previousKey = unsafe thread.pointee.lockdep_chain_key
        // A chain runs within one irq context: it starts at the first lock taken in it.
        let chainHead = depth == 0 || Self.context(unsafe held[depth - 1].flags) != a.context
        let key = Self.mix(
            chainHead ? Self.initialKey(generation) : previousKey,
            UInt64(a.classIndex) | (a.trylock ? 1 << 32 : 0))
        if !a.trylock && !chainIsKnown(key) {
            validate(a, key: key, depth: depth, chainHead: chainHead, generation: generation)
        }
        unsafe held[depth] = CSupport_held_lock(
            prev_chain_key: previousKey, instance: unsafe UnsafeRawPointer(bitPattern: a.instance), file: unsafe a.site.file,
            file_length: a.site.fileLength, line: a.site.line, class_index: a.classIndex,
            generation: generation,
            flags: (a.trylock ? Self.trylockFlag : 0) | a.context << Self.contextShift | (a.irqsOn ? 0 : Self.irqsOffFlag),
            unused: 0)
        unsafe thread.pointee.lockdep_depth = Int32(depth + 1)
        unsafe thread.pointee.lockdep_chain_key = key
    }

    /// Records that the calling thread released `map` (`lock_release`). A lock released
    /// below the top (guards released out of order) is removed and the ones above it are
    /// taken again, as the kernel does, which may record dependencies. Works while the
    /// validator is off too, so no stale record outlives its lock.
    @inline(__always) @safe
    func release(_ map: LockdepMap, instance override: UnsafeRawPointer? = nil) {
        let thread = unsafe ThreadState.current
        let depth = Int(unsafe thread.pointee.lockdep_depth)
        guard depth > 0 else { return }
        let held = unsafe ThreadState.lockdepHeld
        let instance = unsafe override ?? map.instance
        if _fastPath(unsafe held[depth - 1].instance == instance) {
            unsafe thread.pointee.lockdep_depth = Int32(depth - 1)
            unsafe thread.pointee.lockdep_chain_key = held[depth - 1].prev_chain_key
            return
        }
        unsafe releaseBelowTop(instance, thread: thread, depth: depth)
    }

    @inline(never)
    private func releaseBelowTop(_ instance: UnsafeRawPointer, thread: UnsafeMutablePointer<CSupport_thread_state>, depth: Int) {
        let held = unsafe ThreadState.lockdepHeld
        var i = depth - 2
        while i >= 0, unsafe held[i].instance != instance { i -= 1 }
        // Not found: taken while the validator was off. Nothing to do.
        guard i >= 0 else { return }
        let above = depth - 1 - i
        unsafe withUnsafeTemporaryAllocation(of: CSupport_held_lock.self, capacity: above) { saved in
            for j in 0..<above { unsafe saved[j] = held[i + 1 + j] }
            unsafe thread.pointee.lockdep_depth = Int32(i)
            unsafe thread.pointee.lockdep_chain_key = held[i].prev_chain_key
            for j in 0..<above { unsafe reacquire(saved[j], thread: thread) }
        }
    }

    /// Pushes a record again after a lock below it was released (`reacquire_held_locks`).
    private func reacquire(_ entry: CSupport_held_lock, thread: UnsafeMutablePointer<CSupport_thread_state>) {
        let depth = Int(unsafe thread.pointee.lockdep_depth)
        let generation = self.generation.load(ordering: .relaxed)
        let hardIRQ = unsafe thread.pointee.hardirq, softIRQ = unsafe thread.pointee.softirq
        let record = unsafe HeldLock(entry)
        let a = Acquisition(
            instance: record.instance, classIndex: record.classIndex, trylock: record.trylock,
            context: record.context, hardIRQ: hardIRQ, softIRQ: softIRQ,
            irqsOn: record.flags & Self.irqsOffFlag == 0, site: record.site, function: "lock_release", log: nil)
        if isOn && record.generation == generation {
            unsafe push(a, thread: thread, depth: depth, generation: generation)
        } else {
            // From an older generation, or the validator is off: keep the record, unchecked.
            let held = unsafe ThreadState.lockdepHeld
            var copy = unsafe entry
            unsafe copy.prev_chain_key = thread.pointee.lockdep_chain_key
            unsafe held[depth] = copy
            unsafe thread.pointee.lockdep_depth = Int32(depth + 1)
        }
    }

    /// Whether the calling thread holds `map` (by instance). Nil if the validator is off
    /// (the kernel's `LOCK_STATE_UNKNOWN`).
    @safe
    func isHeld(_ map: LockdepMap, instance override: UnsafeRawPointer? = nil) -> Bool? {
        guard isOn else { return nil }
        let instance = unsafe override ?? map.instance
        let depth = Int(unsafe ThreadState.current.pointee.lockdep_depth)
        let held = unsafe ThreadState.lockdepHeld
        for i in 0..<depth where unsafe held[i].instance == instance { return true }
        return false
    }

    // MARK: - Classes

    /// Finds or registers the class of `map` and `subclass`, and caches it in the map.
    /// Nil (with the report made) if the class table is full or the subclass invalid.
    @inline(never)
    private func lookUpClass(
        _ map: LockdepMap, subclass: Int, site: LockSite, function: StaticString, log: KernelLog?
    ) -> UInt32? {
        var reports: [[String]] = []
        let index = lock.withLock { () -> UInt32? in
            guard isOn else { return nil }
            guard subclass >= 0 && subclass < Lockdep.Limits.subclasses else {
                if switchOff() {
                    reports.append(["BUG: looking up invalid subclass: \(subclass)", "turning off the locking correctness validator."])
                    count(.limitOverflow)
                }
                return nil
            }
            let generation = self.generation.load(ordering: .relaxed)
            let key = ClassKey(name: map.className, subclass: subclass)
            if let index = classByKey[key] {
                map.cache(index, subclass: subclass, generation: generation)
                return index
            }
            guard classes.count < limits.classes else {
                if let lines = overflow("MAX_LOCKDEP_KEYS") { reports.append(lines) }
                return nil
            }
            let index = UInt32(classes.count)
            classes.append(LockClass(name: map.label ?? key.name, subclass: subclass, type: map.type))
            classByKey[key] = index
            map.cache(index, subclass: subclass, generation: generation)
            return index
        }
        for lines in reports {
            AtomicContext.warn(.lockdep, lines, function: "\(function)", log: log, file: site.fileText, line: UInt(site.line))
        }
        return index
    }

    /// The class of `map` (subclass 0) if registered. Lock held.
    func registeredClass(_ map: LockdepMap, subclass: Int = 0) -> UInt32? {
        classByKey[ClassKey(name: map.className, subclass: subclass)]
    }

    // MARK: - Switching off and resetting

    /// Switches the validator off (`debug_locks_off`). Returns true for the first caller
    /// only, which reports.
    func switchOff() -> Bool {
        let old = switches.bitwiseOr(Self.offBit, ordering: .sequentiallyConsistent).oldValue
        return old & Self.offBit == 0 && old & Self.enabledBit != 0
    }

    /// The report lines of a full table, or nil if another thread already reported the
    /// validator off. Lock held.
    func overflow(_ limit: String) -> [String]? {
        guard switchOff() else { return nil }
        count(.limitOverflow)
        return ["BUG: \(limit) too low!", "turning off the locking correctness validator."]
    }

    /// Counts a report of `problem`. Lock held.
    func count(_ problem: LockdepProblem) { reportCounts[problem, default: 0] += 1 }

    /// Forgets every class, dependency, chain and report, sets `limits`, and switches the
    /// validator back on if it is enabled. Held records and class caches of the old
    /// generation are ignored from now on.
    func reset(limits: Lockdep.Limits) {
        lock.withLock {
            let clamped = limits.clamped
            for i in 0..<classes.count { setUsage(UInt32(i), 0) }
            for i in 0..<Self.chainSlots {
                // SAFETY: within the buffer.
                unsafe (chainCache + i).pointee.store(0, ordering: .relaxed)
            }
            self.limits = clamped
            classes = []
            classByKey = [:]
            dependencies = []
            chainCount = 0
            chainLockCount = 0
            traces = []
            reported = []
            reportCounts = [:]
            visited = []
            parent = []
            parentTrace = []
            epoch = 0
            depthLimit.store(clamped.depth, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            _ = switches.bitwiseAnd(~Self.offBit, ordering: .sequentiallyConsistent)
        }
    }

    var statistics: Lockdep.Statistics {
        lock.withLock {
            Lockdep.Statistics(
                classes: classes.count, dependencies: dependencies.count, chains: chainCount,
                chainLocks: chainLockCount, traces: traces.count, reports: reportCounts, isActive: isOn)
        }
    }
}

/// One acquisition being recorded: what the slow paths need to validate and report it.
struct Acquisition {
    /// The lock's `LockdepMap` address (compared and printed, never dereferenced).
    let instance: UInt
    let classIndex: UInt32
    let trylock: Bool
    /// 2 in hard-IRQ context, 1 in softirq context (a `call_rcu` callback).
    let context: UInt32
    let hardIRQ: Int32
    let softIRQ: Int32
    /// Whether interrupts were on (not in a hard-IRQ handler, not `withIRQsDisabled`).
    let irqsOn: Bool
    let site: LockSite
    let function: StaticString
    let log: KernelLog?
}

/// Where a lock was taken: a `#fileID` literal (kept as its bytes in the thread's held-lock
/// records, with no allocation) or, for waits reported at their caller's site, a string.
@safe
struct LockSite {
    // SAFETY: `file` points at a string literal's bytes (immortal) or is nil.
    let file: UnsafePointer<UInt8>?
    let fileLength: UInt32
    let line: UInt32
    let text: String?

    @inline(__always)
    init(_ file: StaticString, _ line: UInt) {
        if file.hasPointerRepresentation {
            unsafe self.file = file.utf8Start
            fileLength = UInt32(truncatingIfNeeded: file.utf8CodeUnitCount)
        } else {
            unsafe self.file = nil
            fileLength = 0
        }
        self.line = UInt32(truncatingIfNeeded: line)
        text = nil
    }

    init(text: String, line: UInt) {
        unsafe file = nil
        fileLength = 0
        self.line = UInt32(truncatingIfNeeded: line)
        self.text = text
    }

    init(bytes: UnsafePointer<UInt8>?, length: UInt32, line: UInt32) {
        unsafe file = bytes
        fileLength = length
        self.line = line
        text = nil
    }

    var fileText: String {
        if let text { return text }
        guard let file = unsafe file else { return "?" }
        return unsafe String(decoding: UnsafeBufferPointer(start: file, count: Int(fileLength)), as: UTF8.self)
    }

    /// `file:line`, or a function's name alone (line 0: a site inside the emulated kernel,
    /// as `process_one_work`).
    var description: String { line == 0 ? fileText : "\(fileText):\(line)" }
}

/// One held-lock record, copied out of the thread's storage: what the slow paths read.
struct HeldLock {
    /// The lock's `LockdepMap` address.
    let instance: UInt
    let classIndex: UInt32
    let generation: UInt32
    let flags: UInt32
    let site: LockSite

    init(_ entry: CSupport_held_lock) {
        instance = unsafe UInt(bitPattern: entry.instance)
        classIndex = unsafe entry.class_index
        generation = unsafe entry.generation
        flags = unsafe entry.flags
        site = unsafe LockSite(bytes: entry.file, length: entry.file_length, line: entry.line)
    }

    var trylock: Bool { flags & LockdepGraph.trylockFlag != 0 }
    var context: UInt32 { LockdepGraph.context(flags) }
}
