import CSupport
import Glibc
import KernelRuntime
import RCU
import Synchronization
import SystemPackage

/// One emulated CPU: a real pthread, registered with RCU, that waits in `epoll` for its
/// lines' descriptors and its kick eventfd, and runs flow handlers in hard-IRQ context.
///
/// Each line is delivered to exactly one CPU (its affinity), as an interrupt controller
/// routes an interrupt to one CPU. The hot path (`epoll_wait`, `read`, the flow, the
/// handlers) allocates nothing, and retains nothing until a handler wakes an IRQ thread
/// (checked in the release build's code: the action list, the actions and their handler
/// closures are all reached through borrowed references).
@safe
final class Dispatcher: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the event buffer is only touched by the dispatcher
    // thread; `thread` is written once, by `start()` in the controller's initializer before
    // the controller is shared, and never reset; the rest are atomics, locks or immutable.
    let index: Int
    let mode: DispatchMode
    let epoll: Epoll
    let kick: EventFD
    private let kickPending = Atomic<Bool>(false)
    /// Set from `epoll_wait`'s return, before any line is read, until the pass has handled
    /// what it returned: input a quiesce no longer finds on a line is either handled or
    /// seen here.
    private let inPass = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    /// Set once `stop()` has joined the thread, whose pthread id may then be reused.
    private let joined = Atomic<Bool>(false)
    private let barrierRequested = Atomic<UInt64>(0)
    private let barrierDone = Atomic<UInt64>(0)
    private let barrierDoneLock = ConditionLock()
    private let capacity = 64
    private let tags: UnsafeMutablePointer<UInt64>
    /// This CPU's lines, for the kick's scan of software raises and replays.
    let lines = RCUPointer<LineList>(LineList([]))
    private var thread: KThread?

    static let kickTag: UInt64 = 1

    init(index: Int, mode: DispatchMode) throws(IRQError) {
        self.index = index
        self.mode = mode
        epoll = try Epoll()
        kick = try EventFD()
        unsafe tags = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        unsafe tags.initialize(repeating: 0, count: capacity)
        try epoll.add(kick.fd, data: Self.kickTag)
    }

    deinit {
        unsafe tags.deallocate()
    }

    /// Starts the CPU's thread; it is in its loop when this returns.
    ///
    /// - Throws: `outOfResources` if the thread cannot be created.
    func start(name: String, log: KernelLog, hostCPU: Int?, faults: Faults?) throws(IRQError) {
        let started = Completion()
        do throws(Errno) {
            thread = try KThread(name: "\(name)/cpu\(index)") { [self] in
                if let hostCPU { _ = CSupport_pin_to_cpu(Int32(hostCPU)) }
                // Reports made by handlers on this CPU go to the controller's log; the
                // controller's faults are the thread's from its registration on (reader
                // preemption is decided there).
                KernelLog.withCurrent(log) {
                    FaultInjection.withScope(faults) {
                        RCUThread.register()  // before the first interrupt, not inside it
                        started.complete()
                        self.loop()
                    }
                }
            }
        } catch {
            throw .outOfResources(irq: nil, what: "dispatcher thread \(name)/cpu\(index)", errno: error)
        }
        try? started.wait()
    }

    /// Stops and joins the thread, then lets go of the CPU's lines: they hold this
    /// dispatcher, so the epoll instance, the kick and the lines' descriptors are closed when
    /// the controller goes.
    func stop() {
        stopping.store(true, ordering: .releasing)
        kick.signal()
        try? thread?.join()
        joined.store(true, ordering: .releasing)
        // SAFETY: the only readers of `lines` are the thread just joined and `attach`, which
        // a shut-down controller no longer calls: no read-side section holds the old list.
        _ = unsafe lines.exchangeWithoutWaiting(nil)
    }

    /// Whether the calling thread is this CPU's (false once it was joined).
    var isCurrent: Bool { !joined.load(ordering: .acquiring) && (thread?.isCurrent ?? false) }

    /// Wakes the dispatcher to scan for software raises and replays. Coalesced: one write
    /// while a kick is pending.
    func kickSoftware() {
        if !kickPending.exchange(true, ordering: .sequentiallyConsistent) { kick.signal() }
    }

    /// Whether the CPU is handling what `epoll_wait` returned.
    var isInPass: Bool { inPass.load(ordering: .sequentiallyConsistent) }

    /// Waits until the dispatcher has handled everything that was ready when this was
    /// called (one full pass of `epoll_wait` started after the call), or the deadline.
    func barrier(until deadline: Deadline) -> Bool {
        if isCurrent { return true }
        let ticket = barrierRequested.add(1, ordering: .sequentiallyConsistent).newValue
        kick.signal()
        return barrierDoneLock.wait(until: deadline) { barrierDone.load(ordering: .acquiring) >= ticket }
    }

    private func loop() {
        AtomicContext.setCPU(index)
        // A CPU takes interrupts: real-time signal lines are delivered here even if every
        // other thread (libdispatch workers, say) blocks them.
        _ = CSupport_unblock_realtime_signals()
        // Blocking: sleep in epoll_wait with a 100 ms timeout rather than none. Measured on
        // the development VM: with no timeout a sleeping CPU woke slowly (> 5 µs) for 30–90%
        // of interrupts, with a timeout for under 1% (the C baseline waits the same way).
        let timeout: Int32 = mode == .blocking ? 100 : 0
        while !stopping.load(ordering: .relaxed) {
            let n = unsafe epoll.wait(into: tags, capacity: Int32(capacity), timeout: timeout)
            if n == 0 { continue }
            inPass.store(true, ordering: .sequentiallyConsistent)
            var barrier: UInt64 = 0
            // Hard-IRQ context, and an RCU read-side section, as in the kernel.
            AtomicContext.enterHardIRQ()
            let held = RCUReadGuard(unchecked: ())
            for i in 0..<n {
                let tag = unsafe tags[i]
                if tag == Self.kickTag {
                    barrier = handleKick()
                } else {
                    // SAFETY: the tag is a descriptor's address; descriptors live as long
                    // as the controller, which stops this thread before releasing them.
                    let raw = unsafe UnsafeRawPointer(bitPattern: UInt(tag))!
                    unsafe Unmanaged<IRQDescriptor>.fromOpaque(raw)._withUnsafeGuaranteedRef { descriptor in
                        let count = descriptor.source.acknowledge()
                        descriptor.handleInterrupt(cpu: index, raisedCount: count)
                        injectExtraInterrupts(after: descriptor)
                    }
                }
            }
            _ = consume held
            AtomicContext.exitHardIRQ()
            inPass.store(false, ordering: .releasing)
            if barrier != 0 {
                barrierDoneLock.withLock { barrierDone.store(barrier, ordering: .releasing) }
                barrierDoneLock.wakeAll()
            }
        }
    }

    /// `Faults.duplicateEdge` and `Faults.spuriousInterrupt`: the edge just handled is
    /// delivered again, or one of this CPU's lines takes an interrupt no device raised.
    /// Hard-IRQ context; a relaxed load when no faults are configured.
    @inline(__always)
    private func injectExtraInterrupts(after descriptor: IRQDescriptor) {
        // The trigger is read under the line's lock (a request may set it): only when the
        // fault fires.
        if FaultInjection.fires(.duplicateEdge, { $0.duplicateEdge }), !descriptor.lock.withLock({ descriptor.isLevel }) {
            descriptor.handleInterrupt(cpu: index, raisedCount: 0)
        }
        if FaultInjection.fires(.spuriousInterrupt, { $0.spuriousInterrupt }) {
            lines.read { list in
                guard let all = list?.descriptors, !all.isEmpty else { return }
                let line = all[Int(monotonicNanoseconds() % UInt64(all.count))]
                line.handleInterrupt(cpu: index, raisedCount: 0)
            }
        }
    }

    /// Drains the kick and runs software raises and replays. Returns the barrier ticket
    /// this pass satisfies.
    private func handleKick() -> UInt64 {
        // Drain first, then clear the flag: cleared first, a kick written between the two
        // (its raiser saw the flag clear) was drained with the flag left set, so every later
        // kick was coalesced into it and the CPU never woke for a software raise again
        // (found by the workqueue storm: a raiser that never stops lost its line for good).
        // In this order a raise that finds the flag still set is seen by the scan below.
        _ = kick.drain()
        kickPending.store(false, ordering: .sequentiallyConsistent)
        let ticket = barrierRequested.load(ordering: .acquiring)
        lines.read { list in
            guard let list else { return }
            for descriptor in list.descriptors { descriptor.handleSoftwareRaise(cpu: index) }
        }
        return ticket
    }

    /// Adds a line to this CPU: its descriptor (if any) to epoll, armed while the line is
    /// shut down (raises before the first request are counted as spurious).
    func attach(_ descriptor: IRQDescriptor) throws(IRQError) {
        if let fd = descriptor.source.fileDescriptor {
            try epoll.add(fd, data: descriptor.epollTag, armed: false)
            descriptor.lock.withLock { descriptor.updateArming() }
        }
        addToLineList(descriptor)
    }

    /// Adds `descriptor` to the lines whose software raises this CPU scans.
    func addToLineList(_ descriptor: IRQDescriptor) {
        let current = lines.read { $0?.descriptors ?? [] }
        lines.replace(with: LineList(current + [descriptor]))
    }

    /// Removes `descriptor` from the lines this CPU scans.
    func removeFromLineList(_ descriptor: IRQDescriptor) {
        let current = lines.read { $0?.descriptors ?? [] }
        lines.replace(with: LineList(current.filter { $0 !== descriptor }))
    }
}

/// A CPU's lines: an immutable snapshot read under RCU.
final class LineList: Sendable {
    let descriptors: [IRQDescriptor]
    init(_ descriptors: [IRQDescriptor]) { self.descriptors = descriptors }
}
