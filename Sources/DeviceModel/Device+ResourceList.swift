import KernelRuntime

/// The devres list: resources a driver registered, released newest first at unbind.
extension Device {
    // MARK: - The list

    /// Appends `node` if the device is in a state that accepts resources.
    package func add(_ node: DevresNode, operation: String) throws(DeviceError) {
        try lock.withLock { () throws(DeviceError) in
            switch state {
            case .probing, .bound, .removing: break
            case .unbound, .releasing: throw .notBound(device: name, operation: operation)
            }
            nextSequence += 1
            node.sequence.store(nextSequence, ordering: .releasing)
            node.onList = true
            node.prev = tail
            if let tail { tail.next = node } else { head = node }
            tail = node
            count += 1
        }
    }

    /// Unlinks `node` without releasing it, if it is still on the list, and marks it
    /// finished. Returns false if an unbind took it or it was released or cancelled.
    package func cancel(_ node: DevresNode) -> Bool {
        let cancelled = lock.withLock { () -> Bool in
            guard node.onList else { return false }
            unlink(node)
            node.markCancelledLocked()
            return true
        }
        if cancelled && dropWaiters.load(ordering: .sequentiallyConsistent) > 0 { lock.wakeAll() }
        return cancelled
    }

    /// Whether this device's resources are being released on thread `tid` (by its unbind or
    /// a failed probe).
    package func isReleasing(on tid: Int32) -> Bool {
        lock.withLock { state == .releasing && callbackThread == tid }
    }

    /// Unlinks `node` and, if that succeeded, releases it, with an unbind that starts
    /// meanwhile on another thread waiting for the release to finish. Returns false if an
    /// unbind took it.
    package func removeAndRelease(_ node: DevresNode) -> Bool {
        let tid = ThreadState.tid
        let removed = lock.withLock { () -> Bool in
            guard node.onList else { return false }
            unlink(node)
            dropsInFlight[tid, default: 0] += 1
            return true
        }
        guard removed else { return false }
        // The release runs driver code (an action, a value's teardown), which may unbind
        // this device: that unbind does not wait for this drop.
        node.claimAndDrop()
        lock.withLock {
            dropsInFlight[tid]! -= 1
            if dropsInFlight[tid] == 0 { dropsInFlight[tid] = nil }
        }
        lock.wakeAll()
        return true
    }

    func unlink(_ node: DevresNode) {
        if let prev = node.prev { prev.next = node.next } else { head = node.next }
        if let next = node.next { next.prev = node.prev } else { tail = node.prev }
        node.next = nil
        node.prev = nil
        node.onList = false
        count -= 1
    }

    /// Empties the list, newest first, breaking every link (so a long list is never
    /// released recursively).
    func takeList() -> [DevresNode] {
        var nodes: [DevresNode] = []
        nodes.reserveCapacity(count)
        var node = tail
        while let current = node {
            node = current.prev
            current.onList = false
            current.next = nil
            current.prev = nil
            nodes.append(current)
        }
        head = nil
        tail = nil
        count = 0
        return nodes
    }

    // MARK: - Release actions

    /// Registers `action` to run when the device is unbound, newest first with the other
    /// resources (`devm_add_action`). Runs at once, and throws, if the device is not in a
    /// state that accepts resources, as `devm_add_action_or_reset` does.
    @discardableResult
    public func addAction(
        _ bound: borrowing Bound, name: String, file: StaticString = #fileID, line: UInt = #line,
        _ action: @escaping @Sendable () -> Void
    ) throws(DeviceError) -> DeviceAction {
        guard bound.device === self else { throw .wrongDevice(expected: self.name, given: bound.device.name) }
        // It may run the action at once (below), and the action may sleep.
        try mightSleep("Device.addAction(_:name:_:)", file: file, line: line)
        let node = ActionNode(device: self, name: name, action: action)
        do {
            try add(node, operation: "addAction")
        } catch {
            node.claimAndDrop()
            throw error
        }
        return DeviceAction(node: node)
    }
}
