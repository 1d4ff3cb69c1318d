/// The slow paths: a new chain (`validate_chain`), a new usage bit (`mark_lock`), and the
/// graph searches behind them. Each takes the validator's lock, collects its reports, and
/// records them once the lock is released.
extension LockdepGraph {
    // MARK: - A new chain

    /// Validates a chain of held locks seen for the first time: the same class held already
    /// (recursive locking), then a dependency from each lock held below in the same irq
    /// context (down to and including the first that is not a trylock) to the new one,
    /// each checked for a cycle and for an irq-safe -> irq-unsafe order before it is added.
    @inline(never)
    func validate(_ a: Acquisition, key: UInt64, depth: Int, chainHead: Bool, generation: UInt32) {
        var reports: [[String]] = []
        lock.withLock {
            guard isOn, generation == self.generation.load(ordering: .relaxed), !chainIsKnown(key) else { return }
            var length = 1
            if !chainHead {
                var i = depth - 1
                while i >= 0, Self.held(i).context == a.context {
                    length += 1
                    i -= 1
                }
            }
            guard chainCount < limits.chains else {
                if let lines = overflow("MAX_LOCKDEP_CHAINS") { reports.append(lines) }
                return
            }
            guard chainLockCount + length <= limits.chainLocks else {
                if let lines = overflow("MAX_LOCKDEP_CHAIN_HLOCKS") { reports.append(lines) }
                return
            }
            insertChain(key)
            chainCount += 1
            chainLockCount += length

            // `check_deadlock`: this class held already, without a subclass to tell them apart.
            for i in 0..<depth {
                let prev = Self.held(i)
                guard prev.generation == generation, prev.classIndex == a.classIndex else { continue }
                if reported.insert(.recursive(a.classIndex)).inserted {
                    count(.recursive)
                    reports.append(recursiveReport(a, prev: prev, depth: depth))
                }
                break
            }

            // `check_prevs_add`.
            guard !chainHead else { return }
            var trace: UInt32? = nil
            var i = depth - 1
            while i >= 0 {
                let prev = Self.held(i)
                if prev.context != a.context { break }
                if prev.generation == generation && prev.classIndex != a.classIndex {
                    guard addDependency(from: prev, to: a, depth: depth, trace: &trace, reports: &reports) else { return }
                }
                if !prev.trylock { break }
                i -= 1
            }
        }
        emit(reports, a)
    }

    /// Adds the dependency prev -> next unless known, after checking that it closes no
    /// cycle and joins no irq-safe class to an irq-unsafe one. Returns false if a table
    /// overflowed (the validator is off). Lock held.
    private func addDependency(
        from prev: HeldLock, to a: Acquisition, depth: Int, trace: inout UInt32?, reports: inout [[String]]
    ) -> Bool {
        let from = prev.classIndex, to = a.classIndex
        let pair = UInt64(from) << 32 | UInt64(to)
        if dependencies.contains(pair) { return true }
        // `check_noncircular`: a path next -> ... -> prev already exists.
        if search(from: to, forward: true, skipRoot: true, { $0 == from }) != nil {
            let path = pathTo(from)
            if reported.insert(.circular(from, to)).inserted {
                count(.circular)
                reports.append(circularReport(a, prev: prev, path: path, depth: depth))
            }
        }
        checkIRQUsage(prev: prev, next: a, depth: depth, reports: &reports)
        guard (dependencies.count + 1) * 2 <= limits.entries else {
            if let lines = overflow("MAX_LOCKDEP_ENTRIES") { reports.append(lines) }
            return false
        }
        if trace == nil {
            guard let saved = saveTrace(a) else {
                if let lines = overflow("MAX_STACK_TRACE_ENTRIES") { reports.append(lines) }
                return false
            }
            trace = saved
        }
        dependencies.insert(pair)
        classes[Int(from)].after.append(LockDependency(other: to, trace: trace!))
        classes[Int(to)].before.append(LockDependency(other: from, trace: trace!))
        return true
    }

    /// Saves where `a` happened: its site and the calling thread. Nil if the trace table is
    /// full. Lock held.
    func saveTrace(_ a: Acquisition) -> UInt32? {
        guard traces.count < limits.traces else { return nil }
        traces.append(currentTrace(a))
        return UInt32(traces.count - 1)
    }

    func currentTrace(_ a: Acquisition) -> LockTrace {
        LockTrace(thread: ThreadState.name, tid: ThreadState.tid, site: a.site.description)
    }

    // MARK: - Irq usage

    /// `check_irq_usage`: the new dependency prev -> next must not lead from a class used in
    /// an irq context (irq-safe) to one taken with that irq enabled (irq-unsafe). Lock held.
    private func checkIRQUsage(prev: HeldLock, next a: Acquisition, depth: Int, reports: inout [[String]]) {
        var usedIn: UInt32 = 0
        _ = search(from: prev.classIndex, forward: false, skipRoot: false) { c in
            usedIn |= usage(c) & LockUsage.usedInAll
            return false
        }
        guard usedIn != 0 else { return }
        let enabledMask = LockUsage.exclusiveMask(usedIn)
        guard let unsafeClass = search(from: a.classIndex, forward: true, skipRoot: false, { usage($0) & enabledMask != 0 })
        else { return }
        let unsafePath = pathTo(unsafeClass)
        let safeMask = LockUsage.exclusiveMask(usage(unsafeClass) & LockUsage.enabledAll)
        guard let safeClass = search(from: prev.classIndex, forward: false, skipRoot: false, { usage($0) & safeMask != 0 })
        else { return }
        let safePath = pathTo(safeClass)
        // The incompatible pair: a used-in bit of the safe class whose enabled bit the
        // unsafe class has.
        let safeUsage = usage(safeClass), unsafeUsage = usage(unsafeClass)
        for bit in [LockUsage.usedInHardIRQ, LockUsage.usedInSoftIRQ] where safeUsage & LockUsage.flag(bit) != 0 {
            let enabled = LockUsage.exclusive(bit)
            guard unsafeUsage & LockUsage.flag(enabled) != 0 else { continue }
            if reported.insert(.safeToUnsafe(safeClass, unsafeClass, bit)).inserted {
                count(.irqSafeToUnsafe)
                reports.append(safeToUnsafeReport(
                    a, prev: prev, safePath: safePath, unsafePath: unsafePath, safeBit: bit, unsafeBit: enabled, depth: depth))
            }
            return
        }
    }

    /// `mark_lock` for each bit of `needed` the class lacks: saves where it was first set,
    /// and checks it against the class's other usage (inconsistent lock state) and,
    /// through the graph, against classes taken before or after it (irq lock inversion).
    @inline(never)
    func markUsage(_ a: Acquisition, needed: UInt32, generation: UInt32) {
        var reports: [[String]] = []
        lock.withLock {
            guard isOn, generation == self.generation.load(ordering: .relaxed) else { return }
            let c = a.classIndex
            let new = needed & ~usage(c)
            guard new != 0 else { return }
            guard let trace = saveTrace(a) else {
                if let lines = overflow("MAX_STACK_TRACE_ENTRIES") { reports.append(lines) }
                return
            }
            // Every new bit is set first: the reports show the class's usage after this use.
            setUsage(c, usage(c) | new)
            for bit in 0..<LockUsage.states where new & LockUsage.flag(bit) != 0 {
                classes[Int(c)].usageTraces[bit] = trace
            }
            let depth = Int(unsafe ThreadState.current.pointee.lockdep_depth)
            for bit in 0..<LockUsage.used where new & LockUsage.flag(bit) != 0 {
                let exclusive = LockUsage.exclusive(bit)
                if usage(c) & LockUsage.flag(exclusive) != 0 {
                    // Reported once: each bit is set once.
                    count(.inconsistentState)
                    reports.append(inconsistentReport(a, previousBit: exclusive, newBit: bit, depth: depth))
                    continue
                }
                // Used in irq context now: a class taken after it with that irq on is the
                // inversion (forwards); irq on now: one taken before it in irq context
                // (backwards).
                let forwards = bit & 2 == 0
                guard let other = search(from: c, forward: forwards, skipRoot: true, { usage($0) & LockUsage.flag(exclusive) != 0 })
                else { continue }
                let path = pathTo(other)
                if reported.insert(.inversion(c, other, bit >> 2)).inserted {
                    count(.irqInversion)
                    reports.append(inversionReport(a, path: path, forwards: forwards, bit: bit, depth: depth))
                }
            }
        }
        emit(reports, a)
    }

    // MARK: - Depth

    /// The thread would hold `Limits.depth` locks (`MAX_LOCK_DEPTH`: the 48th trips it).
    @inline(never)
    func depthOverflow(_ a: Acquisition, depth: Int) {
        var reports: [[String]] = []
        lock.withLock {
            guard var lines = overflow("MAX_LOCK_DEPTH") else { return }
            lines.append("depth: \(depth + 1)  max: \(limits.depth)!")
            lines.append(contentsOf: heldLocks(depth: depth))
            reports.append(lines)
        }
        emit(reports, a)
    }

    // MARK: - Searching the graph

    /// Breadth-first search from `root` along the dependencies taken after (forward) or
    /// before (backward) each class, in the order they were first seen, for the first
    /// class `match` accepts (`root` included unless `skipRoot`). The path to it is then
    /// `pathTo(_:)`: the shortest, as the kernel's. Lock held.
    func search(from root: UInt32, forward: Bool, skipRoot: Bool, _ match: (UInt32) -> Bool) -> UInt32? {
        if visited.count < classes.count {
            let grow = classes.count - visited.count
            visited.append(contentsOf: repeatElement(0, count: grow))
            parent.append(contentsOf: repeatElement(0, count: grow))
            parentTrace.append(contentsOf: repeatElement(0, count: grow))
        }
        epoch &+= 1
        if epoch == 0 {
            for i in visited.indices { visited[i] = 0 }
            epoch = 1
        }
        queue.removeAll(keepingCapacity: true)
        queue.append(root)
        visited[Int(root)] = epoch
        parent[Int(root)] = .max
        var head = 0
        while head < queue.count {
            let c = queue[head]
            head += 1
            if (c != root || !skipRoot) && match(c) { return c }
            let list = forward ? classes[Int(c)].after : classes[Int(c)].before
            for dependency in list where visited[Int(dependency.other)] != epoch {
                visited[Int(dependency.other)] = epoch
                parent[Int(dependency.other)] = c
                parentTrace[Int(dependency.other)] = dependency.trace
                queue.append(dependency.other)
            }
        }
        return nil
    }

    /// The path the last search took to `target`, root first: each class with the trace of
    /// the dependency that led to it (nil for the root). Lock held.
    func pathTo(_ target: UInt32) -> [(class: UInt32, trace: UInt32?)] {
        var path: [(class: UInt32, trace: UInt32?)] = []
        var c = target
        while parent[Int(c)] != .max {
            path.append((c, parentTrace[Int(c)]))
            c = parent[Int(c)]
        }
        path.append((c, nil))
        return path.reversed()
    }
}
