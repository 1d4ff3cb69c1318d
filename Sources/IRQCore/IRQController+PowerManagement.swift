import KernelRuntime

extension IRQController {
    /// `suspend_device_irqs`: disables every requested line for a system suspend, except
    /// lines with a NO_SUSPEND action (one keeps its whole line on, COND_SUSPEND sharers
    /// included). Then waits for running handlers, as the kernel's
    /// `synchronize_irq` of each suspended line. Each suspended line gets one disable
    /// (`resumeDeviceIRQs` takes it back); a driver's own disables are kept.
    ///
    /// - Returns: The lines it suspended.
    /// - Throws: `atomicContext` (it waits); `shutDown`.
    @available(*, noasync, message: "waits for running handlers")
    @discardableResult
    public func suspendDeviceIRQs(file: StaticString = #fileID, line: UInt = #line) throws(IRQError) -> [IRQNumber] {
        if AtomicContext.isAtomic {
            throw .atomicContext(AtomicContext.sleepingCallReported("suspend_device_irqs", log: log, file: "\(file)", line: line))
        }
        guard !core.hasShutDown else { throw .shutDown }
        var suspended: [IRQDescriptor] = []
        for descriptor in core.allDescriptors {
            let did = descriptor.lock.withLock { () -> Bool in
                let actions = descriptor.currentActions
                guard !actions.isEmpty, !descriptor.suspended,
                      !actions.contains(where: { $0.flags.contains(.noSuspend) }) else { return false }
                descriptor.suspended = true
                descriptor.depth += 1
                return true
            }
            if did { suspended.append(descriptor) }
        }
        for descriptor in suspended { _ = descriptor.waitForHandlers() }
        return suspended.map(\.irq)
    }

    /// `resume_device_irqs` (and, with `early`, the syscore phase before it): enables the
    /// lines `suspendDeviceIRQs` suspended, taking back its one disable; a line with
    /// FORCE_RESUME actions is enabled even if it was not suspended (a NO_SUSPEND line the
    /// driver left masked), as kernel/irq/pm.c does. With `early: true` only lines whose
    /// first action has EARLY_RESUME; otherwise every other line.
    ///
    /// - Returns: The lines it enabled.
    public func resumeDeviceIRQs(early: Bool = false) throws(IRQError) -> [IRQNumber] {
        guard !core.hasShutDown else { throw .shutDown }
        var resumed: [IRQNumber] = []
        for descriptor in core.allDescriptors {
            let did = descriptor.lock.withLock { () -> Bool in
                let actions = descriptor.currentActions
                let isEarly = actions.first?.flags.contains(.earlyResume) ?? false
                guard isEarly == early else { return false }
                if descriptor.suspended {
                    descriptor.suspended = false
                } else if actions.contains(where: { $0.flags.contains(.forceResume) }) {
                    // Pretend it was disabled, so the enable below unmasks it at depth 0.
                    descriptor.depth += 1
                } else {
                    return false
                }
                descriptor.enableLocked()
                return true
            }
            if did { resumed.append(descriptor.irq) }
        }
        return resumed
    }
}

extension IRQDescriptor {
    /// kernel/irq/pm.c's `irq_pm_install_action` checks, after an action was linked: FORCE_RESUME
    /// is all or none on a line, and once any action is NO_SUSPEND every other must be
    /// NO_SUSPEND or COND_SUSPEND. The kernel warns (`WARN_ON_ONCE`) and keeps the action.
    /// Lock held.
    func checkPowerManagementFlags(function: String, file: String, line: UInt) {
        let flags = currentActions.map(\.flags)
        let forceResume = flags.filter { $0.contains(.forceResume) }.count
        let noSuspend = flags.filter { $0.contains(.noSuspend) }.count
        let condSuspend = flags.filter { $0.contains(.condSuspend) && !$0.contains(.noSuspend) }.count
        var problems: [String] = []
        if forceResume != 0 && forceResume != flags.count {
            problems.append("IRQF_FORCE_RESUME on \(forceResume) of \(flags.count) actions of irq \(irq)")
        }
        if noSuspend != 0 && noSuspend + condSuspend != flags.count {
            problems.append("IRQF_NO_SUSPEND on \(noSuspend) of \(flags.count) actions of irq \(irq), and IRQF_COND_SUSPEND on \(condSuspend)")
        }
        for problem in problems {
            AtomicContext.warn(
                .warning, ["WARNING: at kernel/irq/pm.c irq_pm_install_action", problem],
                function: function, log: log, file: file, line: line)
        }
    }
}
