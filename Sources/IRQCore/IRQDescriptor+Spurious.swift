import KernelRuntime
import RCU

/// Stuck-interrupt detection (kernel/irq/spurious.c `note_interrupt`).
extension IRQDescriptor {
    static let spuriousWindow = 100_000
    static let spuriousThreshold = 99_900

    /// Accounts one interrupt's result. Lock held.
    ///
    /// Nothing is counted until the first unhandled interrupt; from then on every interrupt
    /// counts, and an unhandled one more than 100 ms after the previous unhandled one
    /// restarts the unhandled count at 1. When the window reaches 100,000 interrupts with
    /// more than 99,900 unhandled, the line is reported and disabled. A threaded line whose
    /// primaries only woke threads is judged by whether a thread returned HANDLED since the
    /// previous interrupt (one interrupt late).
    func noteInterrupt(_ rawResult: UInt32, misroutedHandled: Bool = false) {
        var handled = rawResult & ThreadedIRQReturn.handled.rawValue != 0
        let wokeThread = rawResult & ThreadedIRQReturn.wakeThread.rawValue != 0
        if wokeThread {
            if !handled {
                if threadsHandledLast & Self.spuriousDeferred == 0 {
                    threadsHandledLast |= Self.spuriousDeferred
                    return
                }
                let current = threadsHandled | Self.spuriousDeferred
                if current != threadsHandledLast {
                    handled = true
                    threadsHandledLast = current
                }
            } else {
                threadsHandledLast &= ~Self.spuriousDeferred
            }
        }
        if !handled {
            unhandledTotal &+= 1
            let now = monotonicNanoseconds()
            if irqsUnhandled == 0 || now &- lastUnhandled > unhandledResetNanoseconds {
                irqsUnhandled = 1
            } else {
                irqsUnhandled += 1
            }
            lastUnhandled = now
            // A misrouted-interrupt poll that found another line's interrupt: not this line's
            // fault (`irqs_unhandled -= ok`).
            if misroutedHandled { irqsUnhandled -= 1 }
        }
        guard irqsUnhandled != 0 else { return }
        irqCount += 1
        guard irqCount >= Self.spuriousWindow else { return }
        irqCount = 0
        if irqsUnhandled > Self.spuriousThreshold { reportStuck(handled: handled) }
        irqsUnhandled = 0
    }

    /// `__report_bad_irq` and the disable that follows, in the kernel's order: the
    /// headline, the stack dump, `handlers:` and one line per action, then `Disabling IRQ`.
    /// Lock held.
    private func reportStuck(handled: Bool) {
        var after = ["handlers:"]
        for action in currentActions {
            after.append("[<\(action.isDefaultPrimary ? "irq_default_primary_handler" : "handler")>] \(action.name)"
                + (action.hasThreadFunction ? " threaded [<thread_fn>]" : ""))
        }
        after.append("Disabling IRQ #\(irq)")
        AtomicContext.warn(
            .warning, ["irq \(irq): nobody cared (try booting with the \"irqpoll\" option)"], trailing: after,
            function: "note_interrupt", log: log, file: #fileID, line: #line)
        spuriousDisabled = true
        depth += 1
        mask()
    }

    /// Resets the interrupt and unhandled counts (each successful request does, as
    /// `__setup_irq`). The threaded deferral state is kept: the next interrupt still judges
    /// the threads woken before the request.
    func resetSpuriousCounters() {
        irqCount = 0
        irqsUnhandled = 0
    }
}

/// Misrouted-interrupt recovery (spurious.c `irqfixup`/`irqpoll`, `misrouted_irq` and
/// `try_one_irq`): when a line's interrupt goes unhandled, run the handlers of the other
/// shared lines in case the interrupt was theirs.
public enum IRQFixup: String, Sendable, Hashable, CaseIterable {
    /// No recovery (the kernel's default).
    case off
    /// The `irqfixup` boot option: poll the other lines after an unhandled interrupt.
    case irqfixup
    /// The `irqpoll` boot option: as `irqfixup`, and also after every interrupt of a line
    /// whose first action has `IRQFlags.irqPoll`.
    case irqpoll
}

extension IRQDescriptor {
    /// `misrouted_irq`: runs every other eligible line's handlers once (`try_one_irq`), on
    /// this CPU, in hard-IRQ context. One poll at a time per controller; a second one
    /// returns at once. Returns whether any line handled an interrupt. No lock held.
    func pollMisroutedInterrupts() -> Bool {
        guard let core = unsafe controller else { return false }
        guard !core.pollActive.exchange(true, ordering: .acquiring) else { return false }
        defer { core.pollActive.store(false, ordering: .releasing) }
        var handled = false
        for other in core.pollableDescriptors where other !== self {
            if other.tryOneIRQ() { handled = true }
        }
        return handled
    }

    /// `try_one_irq(desc, force = false)`: runs this line's handlers if it is shared,
    /// enabled, not per-CPU and not a timer; if they run on another CPU now, marks an edge
    /// pending for them instead. Returns whether a handler claimed an interrupt.
    func tryOneIRQ() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let first = currentActions.first, first.flags.contains(.shared),
              first.flags.isDisjoint(with: [.perCPU, .timerBit]), !disabled, !pollInProgress else { return false }
        if inProgress {
            pending = true
            return false
        }
        pollInProgress = true
        var handled = false
        repeat {
            pending = false
            inProgress = true
            lock.unlock()
            let result = runActions()
            lock.lock()
            inProgress = false
            if result & ThreadedIRQReturn.handled.rawValue != 0 { handled = true }
        } while pending && !disabled && !currentActions.isEmpty
        pollInProgress = false
        // An interrupt of its own that arrived meanwhile masked it and was handled above.
        if masked && !disabled && !isShutDown && (isLevel ? threadsOneShot == 0 : true) { unmask() }
        if syncWaiters > 0 { lock.wakeAll() }
        return handled
    }
}
