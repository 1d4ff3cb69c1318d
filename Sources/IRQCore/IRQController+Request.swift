import DeviceModel
import Glibc
import KernelRuntime
import RCU
import SystemPackage

extension IRQController {
    /// `request_threaded_irq`: registers `handler` (hard-IRQ context) and `thread`
    /// (process context, on a new `irq/N-name` thread) on `irq`.
    ///
    /// With `handler` nil, a default primary wakes the thread, and `.oneShot` is required.
    /// A line that already has actions accepts the new one only if both are `.shared` with
    /// the same trigger, ONESHOT-ness (or `.condOneShot` joining a ONESHOT line) and
    /// PERCPU-ness; otherwise `EBUSY` and the kernel's `genirq: Flags mismatch` line.
    /// The action's thread is running when this returns. Resets the line's spurious
    /// interrupt and unhandled counts.
    ///
    /// - Parameters:
    ///   - irq: The line.
    ///   - flags: `IRQFlags`; the trigger bits default to the line's.
    ///   - name: The action's name, as `/proc/interrupts` and the thread's name show it.
    ///   - devID: The identity `freeIRQ` names the action by (compared with `===`, and
    ///     kept alive by the action until it is freed); required with `.shared`.
    ///   - file: The caller's `#fileID`, for reports.
    ///   - line: The caller's `#line`, for reports.
    ///   - handler: The primary handler, or nil for the default one that wakes the thread.
    ///   - thread: The threaded handler, or nil for none.
    /// - Throws: `invalidArgument` (EINVAL), `busy` (EBUSY), `outOfResources` if the
    ///   action's thread cannot be created, `shutDown`, `atomicContext`. Nothing is
    ///   requested on error.
    @available(*, noasync, message: "may sleep")
    public func requestThreadedIRQ(
        _ irq: IRQNumber,
        flags: IRQFlags = [],
        name: String,
        devID: AnyObject? = nil,
        file: StaticString = #fileID, line: UInt = #line,
        handler: (@Sendable (IRQNumber) -> ThreadedIRQReturn)?,
        thread: (@Sendable (IRQNumber) -> IRQReturn)?
    ) throws(IRQError) {
        try core.request(
            irq, primary: handler, thread: thread, flags: flags, name: name,
            devID: devID, function: "request_threaded_irq", file: "\(file)", line: line)
        noteUnmanagedRequest(irq, name: name, devID: devID)
    }

    /// `request_irq`: `requestThreadedIRQ` with no thread function and `.condOneShot`
    /// added, so it may join a ONESHOT line.
    ///
    /// The handler runs in hard-IRQ context. Returning `.wakeThread` without a thread
    /// function warns once, as in C.
    @available(*, noasync, message: "may sleep")
    public func requestIRQ(
        _ irq: IRQNumber,
        flags: IRQFlags = [],
        name: String,
        devID: AnyObject? = nil,
        file: StaticString = #fileID, line: UInt = #line,
        handler: @escaping @Sendable (IRQNumber) -> ThreadedIRQReturn
    ) throws(IRQError) {
        try core.request(
            irq, primary: handler, thread: nil, flags: flags.union(.condOneShot), name: name,
            devID: devID, function: "request_irq", file: "\(file)", line: line)
        noteUnmanagedRequest(irq, name: name, devID: devID)
    }

    /// A request a driver callback made by hand (not through a `Registration`): the device
    /// checks, once its resources are released (a failed probe, an unbind), that the driver
    /// freed it, and reports a leak if not.
    private func noteUnmanagedRequest(_ irq: IRQNumber, name: String, devID: AnyObject?) {
        guard let device = Device.inScope, let descriptor = try? core.descriptor(irq) else { return }
        // The dev_id by identity only (an action keeps its own alive, so while the action
        // lives the identity is its), and the line weakly: the check keeps neither alive.
        let cookie = devID.map(ObjectIdentifier.init)
        weak let line = descriptor
        device.noteUnmanaged { device, after in
            guard let line else { return nil }
            let held = line.currentActions.contains { $0.name == name && $0.devID.map(ObjectIdentifier.init) == cookie }
            guard held else { return nil }
            return [
                "WARNING: irqemu: irq \(irq) (\(name)), requested with request_irq by a driver callback of device \(device), is still held after \(after)",
                "an error path (or remove) that does not free it leaks it: free it there, or make it a device resource",
            ]
        }
    }
}

extension ControllerCore {
    func request(
        _ irq: IRQNumber,
        primary: (@Sendable (IRQNumber) -> ThreadedIRQReturn)?,
        thread: (@Sendable (IRQNumber) -> IRQReturn)?,
        flags requested: IRQFlags,
        name: String,
        devID: AnyObject?,
        function: String,
        file: String, line: UInt
    ) throws(IRQError) {
        if AtomicContext.isAtomic {
            throw .atomicContext(AtomicContext.sleepingCallReported(function, log: log, file: file, line: line))
        }
        if requested.contains(.shared) && devID == nil {
            throw .invalidArgument(irq: irq, reason: "IRQF_SHARED without a dev_id")
        }
        if requested.contains(.shared) && requested.contains(.noAutoEnable) {
            throw .invalidArgument(irq: irq, reason: "IRQF_SHARED with IRQF_NO_AUTOEN")
        }
        if requested.contains(.condSuspend) && !requested.contains(.shared) {
            throw .invalidArgument(irq: irq, reason: "IRQF_COND_SUSPEND without IRQF_SHARED")
        }
        if requested.contains(.noSuspend) && requested.contains(.condSuspend) {
            throw .invalidArgument(irq: irq, reason: "IRQF_NO_SUSPEND with IRQF_COND_SUSPEND")
        }
        let descriptor = try self.descriptor(irq)
        if primary == nil && thread == nil {
            throw .invalidArgument(irq: irq, reason: "no handler and no thread function")
        }
        let trigger = requested.trigger
        if trigger.isLevel && !trigger.intersection(.edgeTriggers).isEmpty {
            throw .invalidArgument(irq: irq, reason: "both edge and level trigger flags \(requested)")
        }
        if trigger.isLevel && descriptor.source.levelInput == nil {
            throw .invalidArgument(irq: irq, reason: "a \(descriptor.source.chipName) line cannot be level-triggered")
        }

        // The kernel allocates the action here (`kzalloc`); an injected failure is its ENOMEM.
        if FaultInjection.fires(.requestFailure, fallback: faults, { $0.requestFailure }) {
            throw .outOfResources(irq: irq, what: "the action of \(name) (injected ENOMEM)", errno: .noMemory)
        }
        try lockForRequest(descriptor, function: function, file: file, line: line)
        defer { descriptor.unlockRequestMutex() }
        // Checked under the request mutex: shutdown takes every line's mutex after setting
        // the flag, so it never misses an action published here.
        guard !hasShutDown else { throw .shutDown }

        // Decide the action's final flags and ONESHOT bit (`__setup_irq`), before creating
        // its thread; the request mutex keeps the line's actions from changing meanwhile.
        var flags = requested
        var threadMask: UInt64 = 0
        let decision = descriptor.lock.withLock { () -> Result<Void, IRQError> in
            if flags.trigger.isEmpty { flags.formUnion(descriptor.trigger) }
            let existing = descriptor.currentActions
            if let old = existing.first {
                // As `__setup_irq`: SHARED and trigger first, then ONESHOT (which COND_ONESHOT
                // may add to the new action), then PERCPU; the first mismatch decides, and
                // the line prints the new action's flags as they are at that point.
                var mismatch = !old.flags.intersection(flags).contains(.shared) || descriptor.trigger != flags.trigger
                if !mismatch {
                    if old.flags.contains(.oneShot) && flags.contains(.condOneShot) {
                        flags.insert(.oneShot)
                    } else if old.flags.contains(.oneShot) != flags.contains(.oneShot) {
                        mismatch = true
                    }
                }
                if !mismatch && old.flags.contains(.perCPU) != flags.contains(.perCPU) { mismatch = true }
                if mismatch {
                    if !flags.contains(.probeShared) {
                        log.printk("genirq: Flags mismatch irq \(irq). \(flags.hex) (\(name)) vs. \(old.flags.hex) (\(old.name))")
                    }
                    return .failure(.busy(irq: irq, reason: "flags mismatch: \(flags) (\(name)) vs. \(old.flags) (\(old.name))"))
                }
            }
            if flags.contains(.oneShot) {
                let used = existing.reduce(descriptor.retiringThreadMask) { $0 | $1.threadMask }
                guard used != .max else { return .failure(.busy(irq: irq, reason: "no ONESHOT thread bit left")) }
                threadMask = UInt64(1) << UInt64((~used).trailingZeroBitCount)
            } else if primary == nil {
                log.printk("genirq: Threaded irq requested with handler=NULL and !ONESHOT for \(name) (irq \(irq))")
                return .failure(.invalidArgument(irq: irq, reason: "threaded irq requested with handler=NULL and !ONESHOT"))
            }
            return .success(())
        }
        if case .failure(let error) = decision { throw error }

        let action = IRQAction(
            name: name, flags: flags, devID: devID,
            primary: primary ?? { _ in .wakeThread },
            threadFunction: thread, threadMask: threadMask, isDefaultPrimary: primary == nil, site: "\(file):\(line)")
        if thread != nil {
            let irqThread = IRQThread(descriptor: descriptor, action: action)
            do throws(Errno) {
                try irqThread.start()
            } catch {
                log.printk("genirq: Failed to create thread irq/\(irq)-\(name): \(error)")
                throw .outOfResources(irq: irq, what: "thread irq/\(irq)-\(name)", errno: error)
            }
            action.thread = irqThread
        }

        descriptor.lock.withLock {
            let existing = descriptor.currentActions
            let shared = !existing.isEmpty
            if !shared {
                descriptor.trigger = flags.trigger
                descriptor.spuriousDisabled = false
                descriptor.oneShotLine = flags.contains(.oneShot)
                descriptor.noDebug = flags.isSuperset(of: [.noDebug, .perCPU])
                descriptor.firstActionPolls = flags.contains(.irqPoll)
                descriptor.everSetUp = true
                descriptor.isShutDown = false
                descriptor.pending = false
                descriptor.threadsOneShot = 0
                // A raise from before the request is not this action's.
                descriptor.replayPending.store(false, ordering: .sequentiallyConsistent)
                if descriptor.softPending.exchange(false, ordering: .sequentiallyConsistent) { descriptor.spurious &+= 1 }
            }
            descriptor.actions.replace(with: ActionList(existing + [action]))
            descriptor.checkPowerManagementFlags(function: function, file: file, line: line)
            descriptor.resetSpuriousCounters()
            if !shared {
                if flags.contains(.noAutoEnable) {
                    descriptor.depth = 1
                    descriptor.updateArming()  // masked, and no longer shut down
                } else {
                    descriptor.depth = 0
                    descriptor.unmask()
                }
            } else if descriptor.spuriousDisabled {
                // Disabled by the spurious detector: give the line another chance.
                descriptor.spuriousDisabled = false
                descriptor.enableLocked()
            }
        }
    }
}

extension ControllerCore {
    /// Takes the line's request mutex for a request. On one of the line's own threads, a
    /// free holding the mutex may be waiting for this very thread (in the kernel, a
    /// deadlock): that is reported and refused as `wouldDeadlock` instead.
    func lockForRequest(_ descriptor: IRQDescriptor, function: String, file: String, line: UInt) throws(IRQError) {
        guard descriptor.calledFromOwnThread else { return descriptor.lockRequestMutex() }
        while !descriptor.requestMutex.tryLock() {
            if descriptor.lock.withLock({ descriptor.freeWaitsForThreads > 0 }) {
                AtomicContext.warn(
                    .warning,
                    ["WARNING: \(function)(\(descriptor.irq)) from the line's own threaded handler while free_irq waits for that thread would deadlock"],
                    function: function, log: log, file: file, line: line)
                throw .wouldDeadlock(irq: descriptor.irq, reason: "\(function) from the line's own threaded handler while free_irq waits for it")
            }
            usleep(100)
        }
        Lockdep.acquire(descriptor.requestMutexMap, function: "mutex_lock", file: #fileID, line: #line, log: log)
    }
}
