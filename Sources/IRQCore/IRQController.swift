import DeviceModel
import Glibc
import KernelRuntime
import RCU
import Synchronization

/// An emulated interrupt controller and its CPUs: numbered lines backed by real
/// eventfds, real-time signals, timerfds or the software trigger, delivered by dispatcher
/// threads that run handlers in hard-IRQ context.
///
/// The request_irq family (`requestIRQ`, `requestThreadedIRQ`, `freeIRQ`, `disableIRQ`,
/// `enableIRQ`, `synchronizeIRQ`) follows kernel/irq/manage.c: the same flags, sharing
/// rules, errors and messages (printed to `log`). Sleeping calls are checked: from a
/// hard-IRQ handler or an RCU read-side section they are reported and refused.
///
/// Releasing the controller stops its CPUs; lines still requested are freed first.
///
/// - Note: All methods are thread-safe.
public final class IRQController: Sendable {
    package let core: ControllerCore

    /// Where the controller's kernel messages and reports go.
    public var log: KernelLog { core.log }
    /// The controller's name (used in thread names).
    public var name: String { core.name }
    /// Number of emulated CPUs (dispatcher threads).
    public var cpuCount: Int { core.dispatchers.count }
    /// How the CPUs wait for interrupts.
    public var mode: DispatchMode { core.mode }

    /// Creates a controller with `cpus` dispatcher threads, all running when this returns.
    ///
    /// - Parameters:
    ///   - name: The controller's name, a prefix of its threads' names (`name/cpuN`).
    ///   - cpus: Emulated CPUs, 1 to 64.
    ///   - mode: How the CPUs wait for interrupts.
    ///   - log: Where the controller's messages go; a fresh recording log if nil.
    ///   - hostCPUs: If given, emulated CPU i runs pinned to host CPU
    ///     `hostCPUs[i % hostCPUs.count]` (benchmarks use it to keep the scheduler's placement
    ///     out of the figures). Unpinned by default.
    ///   - unhandledResetInterval: The time after which an unhandled interrupt restarts the
    ///     spurious detector's unhandled count (the kernel's HZ/10, 100 ms).
    ///   - irqFixup: Misrouted-interrupt recovery, the kernel's `irqfixup` and `irqpoll`
    ///     boot options (off by default, as in the kernel).
    ///   - faults: Faults to inject on this controller's CPUs, IRQ threads and calls (nil:
    ///     the process's, `FaultInjection.process`).
    /// - Throws: `invalidArgument` for a CPU count outside 1...64 or a negative reset
    ///   interval; `outOfResources` if a dispatcher thread cannot be started (the threads
    ///   already started are stopped: nothing is left running).
    public init(
        name: String = "irqemu", cpus: Int = 1, mode: DispatchMode = .blocking, hostCPUs: [Int]? = nil,
        log: KernelLog? = nil, unhandledResetInterval: Duration = .milliseconds(100), irqFixup: IRQFixup = .off,
        faults: Faults? = nil
    ) throws(IRQError) {
        guard cpus >= 1 && cpus <= 64 else {
            throw .invalidArgument(irq: nil, reason: "cpus must be between 1 and 64, not \(cpus)")
        }
        guard unhandledResetInterval >= .zero else {
            throw .invalidArgument(irq: nil, reason: "unhandledResetInterval \(unhandledResetInterval) is negative")
        }
        core = try ControllerCore(
            name: name, cpus: cpus, mode: mode, hostCPUs: hostCPUs, log: log ?? KernelLog(name: name),
            unhandledResetNanoseconds: unhandledResetInterval.clampedNanoseconds, irqFixup: irqFixup, faults: faults)
        self.log.noteFaults(faults)
        if irqFixup != .off {
            self.log.printk(irqFixup == .irqpoll
                ? "Misrouted IRQ fixup and polling support enabled" : "Misrouted IRQ fixup support enabled.")
            self.log.printk(irqFixup == .irqpoll
                ? "This may significantly impact system performance" : "This may impact system performance.")
        }
    }

    deinit { core.shutdown(function: "IRQController.deinit", file: #fileID, line: #line, deferInTask: true) }

    /// Frees every line's actions and stops the CPUs. Called by `deinit`; calling it
    /// earlier makes later calls throw `shutDown`.
    ///
    /// Stopping a CPU waits for its thread. Where that cannot be done — in atomic context,
    /// or on one of this controller's own threads (a handler holding its last reference) —
    /// the call is reported as free_irq's is, later calls throw `shutDown` at once, and the
    /// freeing and stopping finish on the `Reaper`. A controller released in a task (where
    /// no thread of the concurrency pool may wait) is shut down the same way, unreported.
    @available(*, noasync, message: "joins the dispatcher threads")
    public func shutdown(file: StaticString = #fileID, line: UInt = #line) {
        core.shutdown(function: "IRQController.shutdown()", file: file, line: line)
    }

    // MARK: - Lines

    /// Adds a line driven by the software trigger (`raise`, `assertLine`, `deassertLine`).
    ///
    /// - Parameters:
    ///   - trigger: The line's default trigger type; level lines stay asserted until
    ///     deasserted.
    ///   - cpu: The emulated CPU the line is routed to; round robin if nil.
    @discardableResult
    public func addSoftwareLine(trigger: IRQFlags = .triggerRising, cpu: Int? = nil) throws(IRQError) -> IRQNumber {
        try addLine(trigger: trigger, cpu: cpu) { irq in SoftwareSource(index: Int(irq.rawValue)) }
    }

    /// Adds a line backed by the source `makeSource` returns for the line's number: the
    /// extension point for new kinds of interrupt hardware (`IRQSources` adds eventfd,
    /// signal and timer lines this way).
    ///
    /// The source is attached (`attach(to:)`) and its descriptor watched before this
    /// returns; if adding fails after it was made, its `shutdown()` is called.
    ///
    /// - Parameters:
    ///   - makeSource: Makes the line's source, given the line's number.
    ///   - trigger: The line's default trigger type. A level trigger needs a source with a
    ///     `levelInput`.
    ///   - cpu: The emulated CPU the line is routed to; round robin if nil.
    /// - Throws: `invalidArgument` for a CPU the controller does not have or a level
    ///   trigger the source cannot drive, `shutDown`, or what `makeSource` throws.
    @discardableResult
    public func addLine(
        trigger: IRQFlags = .triggerRising, cpu: Int? = nil,
        source makeSource: (IRQNumber) throws(IRQError) -> any InterruptSource
    ) throws(IRQError) -> IRQNumber {
        try core.addLine(trigger: trigger, cpu: cpu, makeSource)
    }

    /// The lines, in number order.
    public var lines: [IRQNumber] { core.allDescriptors.map(\.irq) }

    /// The source behind `irq`.
    ///
    /// - Throws: `invalidArgument` for a line the controller does not have; `shutDown`.
    public func source(of irq: IRQNumber) throws(IRQError) -> any InterruptSource {
        try core.descriptor(irq).source
    }

    // MARK: - Raising

    /// Raises `irq` from this process: a software edge, an eventfd write, a signal (to the
    /// calling thread: its shim handler has run when this returns), a timer expiration.
    /// Any thread, any context; returns at once (delivery to the handler is asynchronous,
    /// and raises before the handler runs coalesce into one interrupt, as edges do).
    public func raise(_ irq: IRQNumber) throws(IRQError) {
        try core.descriptor(irq).source.raise()
    }

    /// Asserts a line's level input: it fires, and fires again after each unmask, until
    /// deasserted. Any thread, any context.
    ///
    /// - Throws: `invalidArgument` for a line whose source has no level input (an edge-only
    ///   source).
    public func assertLine(_ irq: IRQNumber) throws(IRQError) {
        try levelInput(of: irq, "assertLine").setAsserted(true)
    }

    /// Deasserts a line's level input. Any thread, any context.
    ///
    /// - Throws: `invalidArgument` for a line whose source has no level input.
    public func deassertLine(_ irq: IRQNumber) throws(IRQError) {
        try levelInput(of: irq, "deassertLine").setAsserted(false)
    }

    private func levelInput(of irq: IRQNumber, _ operation: String) throws(IRQError) -> any LevelInput {
        let source = try core.descriptor(irq).source
        guard let input = source.levelInput else {
            throw .invalidArgument(irq: irq, reason: "\(operation) on a \(source.chipName) line, which has no level input")
        }
        return input
    }
}

/// The controller's state, shared with its dispatcher threads.
package final class ControllerCore: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `descriptors`, `nextCPU` and `isShutDown` are guarded
    // by `lock`; the rest is immutable.
    let name: String
    let log: KernelLog
    let mode: DispatchMode
    let dispatchers: [Dispatcher]
    let unhandledResetNanoseconds: UInt64
    let irqFixup: IRQFixup
    /// The faults injected on this controller's CPUs, IRQ threads and calls (nil: the
    /// process's).
    let faults: Faults?
    /// A misrouted-interrupt poll is running (`irq_poll_active`).
    let pollActive = Atomic<Bool>(false)
    private let lock = Lock()
    private var descriptors: [IRQNumber: IRQDescriptor] = [:]
    private var nextIRQ: UInt32 = 1
    private var nextCPU = 0
    private var isShutDown = false
    private var stopped = false

    init(
        name: String, cpus: Int, mode: DispatchMode, hostCPUs: [Int]?, log: KernelLog, unhandledResetNanoseconds: UInt64,
        irqFixup: IRQFixup, faults: Faults?
    ) throws(IRQError) {
        self.irqFixup = irqFixup
        self.faults = faults
        FaultInjection.scopeCreated(faults)
        self.name = name
        self.log = log
        self.mode = mode
        self.unhandledResetNanoseconds = unhandledResetNanoseconds
        var dispatchers: [Dispatcher] = []
        for index in 0..<cpus { dispatchers.append(try Dispatcher(index: index, mode: mode)) }
        self.dispatchers = dispatchers
        for dispatcher in dispatchers {
            let hostCPU = hostCPUs.flatMap { $0.isEmpty ? nil : $0[dispatcher.index % $0.count] }
            do throws(IRQError) {
                try dispatcher.start(name: name, log: log, hostCPU: hostCPU, faults: faults)
            } catch {
                // Leave nothing running: stop the CPUs that did start.
                for started in dispatchers where started.index < dispatcher.index { started.stop() }
                stopped = true
                throw error
            }
        }
    }

    func addLine(
        trigger: IRQFlags, cpu: Int?, _ makeSource: (IRQNumber) throws(IRQError) -> any InterruptSource
    ) throws(IRQError) -> IRQNumber {
        try lock.withLock { () throws(IRQError) -> IRQNumber in
            guard !isShutDown else { throw .shutDown }
            let irq = IRQNumber(rawValue: nextIRQ)
            if let cpu, !(0..<dispatchers.count).contains(cpu) {
                throw .invalidArgument(irq: irq, reason: "no CPU \(cpu) (the controller has \(dispatchers.count))")
            }
            let source = try makeSource(irq)
            if trigger.isLevel && source.levelInput == nil {
                source.shutdown()
                throw .invalidArgument(irq: irq, reason: "a \(source.chipName) line cannot be level-triggered")
            }
            let index = cpu ?? nextCPU % dispatchers.count
            if cpu == nil { nextCPU += 1 }
            let dispatcher = dispatchers[index]
            let descriptor = IRQDescriptor(
                irq: irq, source: source, controller: self, irqFixup: irqFixup,
                dispatchers: dispatchers, cpu: index, log: log,
                trigger: trigger.trigger.isEmpty ? .triggerRising : trigger.trigger,
                cpuCount: dispatchers.count, unhandledResetNanoseconds: unhandledResetNanoseconds)
            source.attach(to: InterruptLine(descriptor))
            do throws(IRQError) {
                try dispatcher.attach(descriptor)
            } catch {
                source.shutdown()
                throw error
            }
            descriptors[irq] = descriptor
            nextIRQ += 1
            return irq
        }
    }

    /// Runs `body` with the controller lock held: no line is added or moved meanwhile.
    func withLinesLocked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        try lock.withLock(body)
    }

    /// The descriptor of `irq`, or EINVAL.
    func descriptor(_ irq: IRQNumber) throws(IRQError) -> IRQDescriptor {
        try lock.withLock { () throws(IRQError) -> IRQDescriptor in
            guard !isShutDown else { throw .shutDown }
            guard let descriptor = descriptors[irq] else {
                throw .invalidArgument(irq: irq, reason: "no such irq")
            }
            return descriptor
        }
    }

    /// The lines in number order, for a misrouted-interrupt poll (an allocation, on that
    /// rare path only).
    var pollableDescriptors: [IRQDescriptor] { allDescriptors }

    var allDescriptors: [IRQDescriptor] {
        lock.withLock { descriptors.values.sorted { $0.irq < $1.irq } }
    }

    /// Whether `shutdown()` has begun.
    var hasShutDown: Bool { lock.withLock { isShutDown } }

    /// Whether the calling thread is one of this controller's: a CPU, or a line's IRQ thread.
    var isOwnThread: Bool {
        if dispatchers.contains(where: \.isCurrent) { return true }
        guard let own = IRQThread.current?.descriptor else { return false }
        return allDescriptors.contains { $0 === own }
    }

    /// `deferInTask`: in a task, hand the waiting part to the reaper, unreported (the
    /// controller's deinit; an explicit blocking `shutdown()` is the caller's choice).
    func shutdown(function: String, file: StaticString, line: UInt, deferInTask: Bool = false) {
        let all = lock.withLock { () -> [IRQDescriptor]? in
            guard !stopped else { return nil }
            stopped = true
            isShutDown = true
            return descriptors.values.sorted { $0.irq < $1.irq }
        }
        guard let all else { return }
        if deferInTask && !AtomicContext.isAtomic && !isOwnThread && TaskContext.isInTask {
            Reaper.shared.schedule("shut down IRQ controller \(name)") { self.finishShutdown(all) }
            return
        }
        guard AtomicContext.isAtomic || isOwnThread else { return finishShutdown(all) }
        // A thread cannot join itself, and atomic context may not sleep: report, and let
        // the reaper (which holds the core) do the waiting.
        if AtomicContext.isAtomic {
            _ = AtomicContext.sleepingCallReported(function, log: log, file: "\(file)", line: line)
        } else {
            AtomicContext.warn(
                .warning, ["WARNING: \(function) on controller \(name)'s own thread would wait for itself; deferred"],
                function: function, log: log, file: "\(file)", line: line)
        }
        Reaper.shared.schedule("shut down IRQ controller \(name)") { self.finishShutdown(all) }
    }

    private func finishShutdown(_ all: [IRQDescriptor]) {
        // Free what is still requested, then stop the CPUs and release the hardware. A
        // request checks for shutdown with the line's request mutex held, so once this has
        // taken and released each line's mutex after `isShutDown` was set, no request can
        // add an action: the snapshot below, taken under the mutex, is complete.
        for descriptor in all {
            let actions = descriptor.withRequestMutex { descriptor.currentActions }
            for action in actions {
                _ = try? free(descriptor, devID: action.devID, function: "IRQController.shutdown()",
                              file: #fileID, line: #line, warnIfMissing: false)
            }
        }
        for dispatcher in dispatchers { dispatcher.stop() }
        for descriptor in all { descriptor.source.shutdown() }
    }
}

/// `seconds` as nanoseconds, or nil unless it is a number from 0 to 10⁹ (31 years), so the
/// conversion cannot trap.
package func nanoseconds(_ seconds: Double) -> UInt64? {
    guard seconds >= 0 && seconds <= 1e9 else { return nil }  // false for NaN too
    return UInt64(seconds * 1e9)
}
