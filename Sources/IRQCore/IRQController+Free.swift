import DeviceModel
import KernelRuntime
import RCU

extension IRQController {
    /// `free_irq`: removes the action named by `devID` from `irq`, shuts the line down if
    /// it was the last, waits for running handlers and for every thread of the line, stops
    /// the action's thread (a pending run finishes first), and returns the name given at
    /// request.
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
            descriptor, devID: devID, function: "free_irq", file: "\(file)", line: line,
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
        _ descriptor: IRQDescriptor, devID: AnyObject?, function: String, file: String, line: UInt,
        warnIfMissing: Bool
    ) throws(IRQError) -> String {
        try checkMaySleep(descriptor, function, file: file, line: line)
        // The lock validator: the wait for the line's threads, noted for the locks the
        // caller holds (the request mutex's own conflict with them is refused at run time:
        // see `lockForRequest`).
        descriptor.noteThreadWaits(function: "free_irq", file: file, line: line)
        // As the kernel's `__free_irq`, the request mutex is held across the waits: no
        // request on the line can meet a half-freed action. A threaded handler of the line
        // that requests meanwhile would wait for the free that waits for it: `request`
        // refuses that (see `freeWaitsForThreads`) instead of deadlocking. The handler data
        // goes after the mutex is released: its deinit may free another action of the line.
        let (action, retired, detached) = try descriptor.withRequestMutex { () throws(IRQError) -> (IRQAction, IRQAction.Handlers?, Bool) in
            if let action = descriptor.lock.withLock({ descriptor.unlink(devID: devID) }) {
                descriptor.lock.withLock { descriptor.freeWaitsForThreads += 1 }
                FaultInjection.delay(.freeIRQWait) { $0.freeIRQWait }
                _ = descriptor.waitForHandlers()
                // From here the free waits only for its own action's thread, idle now.
                descriptor.lock.withLock { descriptor.freeWaitsForThreads -= 1 }
                return (action, retire(descriptor, action), false)
            }
            // A free that could not wait left it detached: finish it as the reaper does (its
            // thread, which may request on the line, is stopped after the mutex).
            if let action = takeDetachedAndWaitForPrimaries(descriptor, devID: devID) { return (action, nil, true) }
            // After shutdown() freed every action, a registration's free has nothing to do.
            if warnIfMissing && !hasShutDown {
                AtomicContext.warn(
                    .warning, ["WARNING: Trying to free already-free IRQ \(descriptor.irq)"],
                    function: function, log: log, file: file, line: line)
            }
            throw .alreadyFree(irq: descriptor.irq)
        }
        // The handler data goes by the time this returns, with no lock of the line held.
        _ = detached ? retire(descriptor, action) : retired
        return action.name
    }

    /// The end of free_irq, once no primary handler of the line runs: the action's own
    /// thread is stopped (the kernel's `kthread_stop`, which lets a pending run finish), its
    /// ONESHOT bit is given back, and its handlers are taken, for the caller to drop with no
    /// lock of the line held.
    func retire(_ descriptor: IRQDescriptor, _ action: IRQAction) -> IRQAction.Handlers? {
        action.thread?.stop()
        action.thread = nil
        return descriptor.lock.withLock { () -> IRQAction.Handlers? in
            descriptor.retiringThreadMask &= ~action.threadMask
            return action.takeHandlers()
        }
    }

    /// The non-sleeping half of free_irq, for a teardown that may not sleep (a
    /// registration dropped in a handler, a read-side section or the line's own thread):
    /// unlinks the action now, so its handler never starts again, and leaves the wait to
    /// `finishDetachedFree` on the reaper. Returns false if there was no such action.
    func detachForDeferredFree(_ descriptor: IRQDescriptor, devID: AnyObject?) -> Bool {
        descriptor.lock.withLock {
            guard let action = descriptor.unlink(devID: devID) else { return false }
            descriptor.detached.append(action)
            return true
        }
    }

    /// Completes a free started by `detachForDeferredFree`. Process context (the reaper).
    ///
    /// Unlike `free`, only taking the action and waiting for primary handlers hold the
    /// request mutex: the action's thread, which dropped its own registration, may request
    /// on the line before it stops (its ONESHOT bit stays reserved until then), and the
    /// line's other threads are not waited for (a new action's could keep the reaper busy
    /// for ever).
    func finishDetachedFree(_ descriptor: IRQDescriptor, devID: AnyObject?) {
        guard let action = descriptor.withRequestMutex({ takeDetachedAndWaitForPrimaries(descriptor, devID: devID) }) else { return }
        // Stopping the action's thread lets a pending run finish: a wait for it.
        if let map = action.threadMap { Lockdep.noteWait(for: map) }
        let handlers = retire(descriptor, action)
        _ = consume handlers
    }

    /// Takes back a detached action and waits until no primary handler of the line runs.
    /// Request mutex held.
    private func takeDetachedAndWaitForPrimaries(_ descriptor: IRQDescriptor, devID: AnyObject?) -> IRQAction? {
        guard let action = descriptor.lock.withLock({ descriptor.takeDetached(devID: devID) }) else { return nil }
        descriptor.waitForPrimaryHandlers()
        return action
    }
}

extension IRQDescriptor {
    /// Unlinks the action with `devID` and, if it was the last, shuts the line down
    /// (`irq_shutdown`): from then on its raises are drained and counted as spurious, and a
    /// raise still latched is counted now, so the next requester never sees one. Lock held.
    func unlink(devID: AnyObject?) -> IRQAction? {
        let existing = currentActions
        guard let index = existing.firstIndex(where: { $0.devID === devID }) else { return nil }
        var remaining = existing
        let action = remaining.remove(at: index)
        actions.replace(with: ActionList(remaining))
        retiringThreadMask |= action.threadMask
        if remaining.isEmpty {
            isShutDown = true
            mask()
            updateArming()
            depth = 1
            suspended = false
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
    func takeDetached(devID: AnyObject?) -> IRQAction? {
        guard let index = detached.firstIndex(where: { $0.devID === devID }) else { return nil }
        return detached.remove(at: index)
    }
}
