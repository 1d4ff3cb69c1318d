import DeviceModel
import RCU

extension IRQController {
    /// `free_irq`: removes the action named by `devID` from `irq`, shuts the line down if
    /// it was the last, waits for running handlers and for every thread of the line, stops
    /// the action's thread, and returns the name given at request.
    ///
    /// When it returns, the action's handler and thread never run again and the data they
    /// use may be freed. On a shared line the other actions keep running.
    ///
    /// - Throws: `alreadyFree` (with the kernel's `Trying to free already-free IRQ N`
    ///   warning; nothing changed), `atomicContext` from a hard-IRQ handler or a `call_rcu`
    ///   callback (`Trying to free IRQ N from IRQ context!`, as for the kernel's
    ///   `in_interrupt()`) or from another atomic context (an RCU read-side section, a
    ///   spinlock), `wouldDeadlock` from the line's own threaded handler.
    @available(*, noasync, message: "waits for running handlers")
    @discardableResult
    public func freeIRQ(
        _ irq: IRQNumber, devID: AnyObject? = nil, file: StaticString = #fileID, line: UInt = #line
    ) throws(IRQError) -> String {
        let descriptor = try core.descriptor(irq)
        return try core.free(
            descriptor, devID: devID.map(ObjectIdentifier.init), function: "free_irq", file: "\(file)", line: line,
            warnIfMissing: true)
    }
}

extension ControllerCore {
    /// Refuses a sleeping call on `descriptor` from atomic context or from the line's own
    /// thread (which would wait for itself).
    func checkMaySleep(_ descriptor: IRQDescriptor, _ function: String, file: String, line: UInt) throws(IRQError) {
        if AtomicContext.isAtomic {
            var extra: [String] = []
            if AtomicContext.inInterrupt && function == "free_irq" {
                extra = ["WARNING: Trying to free IRQ \(descriptor.irq) from IRQ context!"]
            }
            throw .atomicContext(AtomicContext.sleepingCallReported(function, log: log, extra: extra, file: file, line: line))
        }
        if descriptor.calledFromOwnThread {
            AtomicContext.warn(
                .warning,
                ["WARNING: \(function)(\(descriptor.irq)) from the line's own threaded handler would wait for itself"],
                function: function, log: log, file: file, line: line)
            throw .wouldDeadlock(irq: descriptor.irq, reason: "\(function) from the line's own threaded handler")
        }
    }

    func free(
        _ descriptor: IRQDescriptor, devID: ObjectIdentifier?, function: String, file: String, line: UInt,
        warnIfMissing: Bool
    ) throws(IRQError) -> String {
        try checkMaySleep(descriptor, function, file: file, line: line)
        // Only the unlink holds the request mutex. The waits come after it is released: a
        // threaded handler of the line (another action's, or this action's own, which the
        // free stops) may request an action on the line meanwhile, and the handlers' data,
        // dropped last, may free another action of the line (it held that one).
        let action = try descriptor.requestMutex.withLock { () throws(IRQError) -> IRQAction in
            if let action = descriptor.lock.withLock({ descriptor.unlink(devID: devID) }) { return action }
            // Maybe a free that could not wait left it detached: finish that one.
            if let detached = descriptor.lock.withLock({ descriptor.takeDetached(devID: devID) }) { return detached }
            // After shutdown() freed every action, a registration's free has nothing to do.
            if warnIfMissing && !hasShutDown {
                AtomicContext.warn(
                    .warning, ["WARNING: Trying to free already-free IRQ \(descriptor.irq)"],
                    function: function, log: log, file: file, line: line)
            }
            throw .alreadyFree(irq: descriptor.irq)
        }
        finishFree(descriptor, action)
        return action.name
    }

    /// The waiting half of free_irq, for an action unlinked from the line, with no lock of
    /// the line held: no primary handler of the line runs, the action's own thread is
    /// stopped (the kernel's `synchronize_hardirq`, `kthread_stop`), its ONESHOT bit is given
    /// back, no thread of the line is active; then its handlers (and their data) are dropped.
    func finishFree(_ descriptor: IRQDescriptor, _ action: IRQAction) {
        descriptor.waitForPrimaryHandlers()
        action.thread?.stop()
        action.thread = nil
        let handlers = descriptor.lock.withLock { () -> IRQAction.Handlers? in
            descriptor.retiringThreadMask &= ~action.threadMask
            return action.takeHandlers()
        }
        _ = descriptor.waitForHandlers()
        _ = consume handlers  // last: the handler data may call back into the controller
    }

    /// The non-sleeping half of free_irq, for a teardown that may not sleep (a
    /// registration dropped in a handler, a read-side section or the line's own thread):
    /// unlinks the action now, so its handler never starts again, and leaves the wait to
    /// `finishDetachedFree` on the reaper. Returns false if there was no such action.
    func detachForDeferredFree(_ descriptor: IRQDescriptor, devID: ObjectIdentifier?) -> Bool {
        descriptor.lock.withLock {
            guard let action = descriptor.unlink(devID: devID) else { return false }
            descriptor.detached.append(action)
            return true
        }
    }

    /// Completes a free started by `detachForDeferredFree`. Process context (the reaper).
    func finishDetachedFree(_ descriptor: IRQDescriptor, devID: ObjectIdentifier?) {
        // Taken under the request mutex, as `free` unlinks; waited for after it, as there.
        let action = descriptor.requestMutex.withLock {
            descriptor.lock.withLock { descriptor.takeDetached(devID: devID) }
        }
        if let action { finishFree(descriptor, action) }
    }
}

extension IRQDescriptor {
    /// Unlinks the action with `devID` and, if it was the last, shuts the line down
    /// (`irq_shutdown`): from then on its raises are drained and counted as spurious, and a
    /// raise still latched is counted now, so the next requester never sees one. Lock held.
    func unlink(devID: ObjectIdentifier?) -> IRQAction? {
        let existing = currentActions
        guard let index = existing.firstIndex(where: { $0.devID == devID }) else { return nil }
        var remaining = existing
        let action = remaining.remove(at: index)
        actions.replace(with: ActionList(remaining))
        retiringThreadMask |= action.threadMask
        if remaining.isEmpty {
            isShutDown = true
            mask()
            updateArming()
            depth = 1
            pending = false
            threadsOneShot = 0
            replayPending.store(false, ordering: .sequentiallyConsistent)
            if softPending.exchange(false, ordering: .sequentiallyConsistent) { spurious &+= 1 }
        } else {
            threadsOneShot &= ~action.threadMask
        }
        return action
    }

    /// Takes a detached action back, if there is one for `devID`. Lock held.
    func takeDetached(devID: ObjectIdentifier?) -> IRQAction? {
        guard let index = detached.firstIndex(where: { $0.devID == devID }) else { return nil }
        return detached.remove(at: index)
    }
}
