import KernelRuntime
import RCU

/// The flow handlers (kernel/irq/chip.c, handle.c): what the dispatcher runs, in hard-IRQ
/// context, for each interrupt of a line.
extension IRQDescriptor {
    /// Handles one interrupt delivered on `cpu`: `handle_edge_irq` or `handle_level_irq`.
    /// `raisedCount` is what the source acknowledged (0 for a replay).
    @inline(__always)
    func handleInterrupt(cpu: Int, raisedCount: UInt64) {
        lock.lock()
        raised &+= raisedCount
        flowThenUnlock(cpu: cpu, deliver: true)
    }

    /// Runs the line's flow handler if `deliver`, then drops the lock and wakes
    /// `synchronize_irq` and `synchronize_hardirq` waiters once no primary handler runs.
    /// Lock held on entry.
    @inline(__always)
    private func flowThenUnlock(cpu: Int, deliver: Bool) {
        if deliver {
            if isLevel { levelFlow(cpu: cpu) } else { edgeFlow(cpu: cpu) }
        }
        let wake = syncWaiters > 0 && !inProgress
        lock.unlock()
        if wake { lock.wakeAll() }
    }

    /// Handles a software raise or a replay. A masked edge line keeps its raise latched
    /// until `unmask()` kicks the CPU again; a level line fires only while asserted and
    /// unmasked (unmasking re-raises it if still asserted). A shut-down line counts the
    /// raise as spurious and has nothing to replay.
    func handleSoftwareRaise(cpu: Int) {
        lock.lock()
        let replay = replayPending.exchange(false, ordering: .sequentiallyConsistent)
        if isShutDown {
            if softPending.exchange(false, ordering: .sequentiallyConsistent) { spurious &+= 1 }
            flowThenUnlock(cpu: cpu, deliver: false)
            return
        }
        let deliver: Bool
        if isLevel {
            let raisedNow = softPending.exchange(false, ordering: .sequentiallyConsistent)
            let asserted = source.levelInput?.isAsserted ?? true
            deliver = (raisedNow || replay) && !masked && asserted
        } else if masked && !replay {
            deliver = false
        } else {
            let raisedNow = softPending.exchange(false, ordering: .sequentiallyConsistent)
            deliver = raisedNow || replay
        }
        flowThenUnlock(cpu: cpu, deliver: deliver)
    }

    /// `handle_edge_irq`. Lock held.
    private func edgeFlow(cpu: Int) {
        if currentActionCount == 0 {
            // A raise on a line with no handler (freed, never requested): spurious.
            spurious &+= 1
            mask()
            return
        }
        if inProgress || disabled {
            // Cannot run now: remember one edge and mask (`mask_ack_irq`).
            pending = true
            mask()
            return
        }
        unsafe perCPU[cpu] &+= 1
        repeat {
            if currentActionCount == 0 {
                mask()
                return
            }
            if pending && !disabled && masked { unmask() }
            handleEvent()
        } while pending && !disabled
    }

    /// `handle_level_irq`. Lock held.
    private func levelFlow(cpu: Int) {
        mask()  // mask_ack
        if inProgress { return }  // the running handler unmasks when it is done
        if currentActionCount == 0 {
            spurious &+= 1
            return
        }
        if disabled {
            pending = true
            return
        }
        unsafe perCPU[cpu] &+= 1
        handleEvent()
        // cond_unmask_irq: not while disabled, nor while a ONESHOT thread is pending.
        if !disabled && masked && threadsOneShot == 0 { unmask() }
    }

    private var currentActionCount: Int { actions.read { $0?.actions.count ?? 0 } }

    /// `handle_irq_event`: runs the actions with the lock dropped and INPROGRESS set, then
    /// feeds the result to the spurious detector. Lock held on entry and exit.
    private func handleEvent() {
        pending = false
        inProgress = true
        let fixup = irqFixup
        let pollOthers = fixup == .irqpoll && firstActionPolls
        lock.unlock()
        let result = runActions()
        // `try_misrouted_irq`: an unhandled interrupt (or, under irqpoll, any interrupt of an
        // IRQPOLL line) may have been another line's; poll the others. No lock held.
        var misroutedHandled = false
        if fixup != .off && (result == 0 || pollOthers) {
            misroutedHandled = pollMisroutedInterrupts()
        }
        lock.lock()
        if !noDebug { noteInterrupt(result, misroutedHandled: misroutedHandled) }
        inProgress = false
    }

    /// `__handle_irq_event_percpu`: every action in order; results ORed.
    func runActions() -> UInt32 {
        var result: UInt32 = 0
        let held = RCUReadGuard(unchecked: ())
        // SAFETY: the list, and so its buffer and every action in it, lives while `held`
        // is held.
        guard let list = unsafe actions.dereference(under: held, { unsafe $0?.unretained }) else { return 0 }
        for unsafe reference in unsafe list {
            let r = unsafe reference._withUnsafeGuaranteedRef { action -> UInt32 in
                FaultInjection.delay(.primaryHandler, spinning: true) { $0.primaryHandler }
                let r = action.primary(irq)
                if r == .wakeThread {
                    if !action.hasThreadFunction {
                        warnWakeWithoutThread(action)
                    } else {
                        wakeThread(of: action)
                    }
                }
                return r.rawValue
            }
            result |= r
        }
        _ = consume held
        return result
    }

    private func warnWakeWithoutThread(_ action: IRQAction) {
        guard !action.warnedWakeWithoutThread.exchange(true, ordering: .relaxed) else { return }
        AtomicContext.warn(
            .warning,
            ["WARNING: IRQ \(irq) device \(action.name) returned IRQ_WAKE_THREAD but no thread function available."],
            function: "__handle_irq_event_percpu", log: log, file: #fileID, line: #line)
    }
}
