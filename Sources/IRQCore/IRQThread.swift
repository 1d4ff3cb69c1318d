import KernelRuntime
import RCU
import Synchronization
import SystemPackage

/// The thread of a threaded action (`irq/N-name`): runs the action's thread function in
/// process context each time the primary handler returns `.wakeThread`.
///
/// Wakes coalesce while a run is pending (`IRQTF_RUNTHREAD`); a wake during a run gives
/// exactly one more run.
final class IRQThread: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `kthread` is written once in `start()`, before any wake.
    unowned let descriptor: IRQDescriptor
    unowned let action: IRQAction
    let runFlag = Atomic<Bool>(false)
    let stopFlag = Atomic<Bool>(false)
    private let wakeup = ConditionLock()
    private var kthread: KThread?

    init(descriptor: IRQDescriptor, action: IRQAction) {
        self.descriptor = descriptor
        self.action = action
    }

    /// Starts the kernel thread; it is waiting for its first wake when this returns.
    ///
    /// - Throws: `KThread`'s errno if the thread cannot be created; nothing was started.
    func start() throws(Errno) {
        let started = Completion()
        let name = "irq/\(descriptor.irq)-\(action.name)"
        let log = descriptor.log
        let faults = unsafe descriptor.controller?.faults
        kthread = try KThread(name: name) { [self] in
            KernelLog.withCurrent(log) {
                FaultInjection.withScope(faults) {
                    RCUThread.register()  // in the controller's faults: reader preemption is decided here
                    started.complete()
                    self.loop()
                }
            }
        }
        try? started.wait()
    }

    /// `__irq_wake_thread`'s test-and-set: returns true if this call set the run flag.
    @inline(__always)
    func setRunFlag() -> Bool {
        !runFlag.exchange(true, ordering: .acquiringAndReleasing)
    }

    /// Wakes the thread (after `setRunFlag()` returned true).
    func wake() {
        wakeup.withLock {}
        wakeup.wakeAll()
    }

    /// `kthread_stop`: asks the thread to exit and joins it. It runs once more first if a
    /// run is pending.
    func stop() {
        stopFlag.store(true, ordering: .releasing)
        wake()
        try? kthread?.join()
    }

    /// Whether the calling thread is this IRQ thread.
    var isCurrent: Bool { kthread?.isCurrent ?? false }

    private func loop() {
        unsafe ThreadState.irqThread = Unmanaged.passUnretained(self).toOpaque()
        defer { unsafe ThreadState.irqThread = nil }
        while true {
            _ = wakeup.wait {
                runFlag.load(ordering: .acquiring) || stopFlag.load(ordering: .acquiring)
            }
            if runFlag.exchange(false, ordering: .acquiringAndReleasing) {
                FaultInjection.delay(.threadedHandler) { $0.threadedHandler }
                let result: IRQReturn
                if let map = action.threadMap {
                    result = Lockdep.withHeld(map) { action.threadFunction(descriptor.irq) }
                } else {
                    result = action.threadFunction(descriptor.irq)
                }
                descriptor.threadFinished(self, result: result)
            } else if stopFlag.load(ordering: .acquiring) {
                return
            }
        }
    }

    /// The IRQ thread running on the calling thread, if any.
    static var current: IRQThread? {
        guard let raw = unsafe ThreadState.irqThread else { return nil }
        // SAFETY: set by `loop()` for the life of the thread, which the IRQThread outlives
        // (`stop()` joins it before the IRQThread can be released).
        return unsafe Unmanaged<IRQThread>.fromOpaque(raw).takeUnretainedValue()
    }
}
