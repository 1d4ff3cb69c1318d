import KernelRuntime
import SystemPackage

extension IRQController {
    /// The emulated CPU a line is routed to (`/proc/irq/N/effective_affinity`).
    public func affinity(of irq: IRQNumber) throws(IRQError) -> Int {
        try core.descriptor(irq).cpu.load(ordering: .acquiring)
    }

    /// Routes a line to another emulated CPU, as a write to `/proc/irq/N/smp_affinity` (or
    /// irqbalance) does. Interrupts already taken by the old CPU finish there; later ones
    /// go to `cpu`.
    ///
    /// - Throws: `invalidArgument` for a CPU the controller does not have; `system` with
    ///   `EIO` for a line whose first action has NOBALANCING or PERCPU, which userspace may
    ///   not move (`irq_can_set_affinity_usr`); `shutDown`.
    public func setAffinity(_ irq: IRQNumber, cpu: Int) throws(IRQError) {
        let descriptor = try core.descriptor(irq)
        guard (0..<cpuCount).contains(cpu) else {
            throw .invalidArgument(irq: irq, reason: "no CPU \(cpu) (the controller has \(cpuCount))")
        }
        try core.move(descriptor, to: cpu)
    }
}

extension ControllerCore {
    /// Moves `descriptor` to CPU `cpu`: its descriptor leaves the old CPU's epoll for the new
    /// one's (armed as it was), and the CPUs' line lists follow. Under the controller lock,
    /// which serializes every change of the CPUs' line lists.
    func move(_ descriptor: IRQDescriptor, to cpu: Int) throws(IRQError) {
        try withLinesLocked { () throws(IRQError) in
            try descriptor.lock.withLock { () throws(IRQError) in
                if let first = descriptor.currentActions.first, !first.flags.isDisjoint(with: [.noBalancing, .perCPU]) {
                    throw .system(call: "write /proc/irq/\(descriptor.irq)/smp_affinity", errno: .ioError)
                }
                let old = descriptor.dispatcher
                guard old.index != cpu else { return }
                let new = dispatchers[cpu]
                if let fd = descriptor.source.fileDescriptor {
                    try new.epoll.add(fd, data: descriptor.epollTag, armed: descriptor.isArmed)
                    old.epoll.remove(fd)
                }
                descriptor.cpu.store(cpu, ordering: .releasing)
                old.removeFromLineList(descriptor)
                new.addToLineList(descriptor)
                // A software raise or replay the old CPU had not taken yet goes to the new one.
                if descriptor.softPending.load(ordering: .acquiring) || descriptor.replayPending.load(ordering: .acquiring) {
                    new.kickSoftware()
                }
            }
        }
    }
}
