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
    func noteInterrupt(_ rawResult: UInt32) {
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
