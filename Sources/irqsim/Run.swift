import ArgumentParser
import Foundation
import IRQEmu
import Synchronization

extension IRQSim {
    /// A small machine to watch: two NICs on a shared line, a disk on a threaded ONESHOT
    /// level line, a timer, and a UART raised by a real-time signal from any process.
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run an emulated machine and print /proc/interrupts every second.")

        @OptionGroup var common: CommonOptions
        @Option(help: "Seconds to run (0: until Ctrl-C).") var seconds = 5.0
        @Flag(help: "Start a child process (irqemu-helper) that raises the ttyS0 line by signal every 50 ms.")
        var typist = false

        func validate() throws {
            try common.validate(allowBroken: false)
            guard seconds >= 0 else { throw ValidationError("--seconds must not be negative") }
        }

        mutating func run() throws {
            let machine = try Machine(cpus: common.cpus, strategy: common.strategy == "mutex" ? .mutex : .rcu)
            try machine.run(seconds: seconds, typist: typist)
        }
    }
}

/// What a device's Devres holds: counters its handlers and readers update.
final class DeviceStats: Sendable {
    let events = Atomic<UInt64>(0)
    let reads = Atomic<UInt64>(0)
    /// Packets a NIC's bottom half took off its ring.
    let packets = Atomic<UInt64>(0)
    init() {}
}

/// A NIC on a shared line, with a bottom half: the hard handler claims the interrupt only
/// when it has a packet pending, acknowledges it and queues the NIC's work item; the work
/// (on a kworker, process context) takes the packets off the receive ring.
final class NIC: Handler, WorkItem {
    let name: String
    let work: Work
    let queue: Workqueue
    let rxPending = Atomic<Bool>(false)
    /// Packets the "hardware" put on the receive ring and the bottom half has not taken.
    let ring = Atomic<UInt64>(0)
    let interrupts = Atomic<UInt64>(0)
    let packets = Atomic<UInt64>(0)
    let runs = Atomic<UInt64>(0)
    let stats = Mutex<Devres<DeviceStats>?>(nil)
    let hardIRQReadsDevres: Bool
    init(name: String, queue: Workqueue, hardIRQReadsDevres: Bool) {
        self.name = name
        work = Work(name: "\(name)_rx")
        self.queue = queue
        self.hardIRQReadsDevres = hardIRQReadsDevres
    }

    /// The hardware: one more packet on the ring, and the interrupt pending.
    func receive() {
        ring.add(1, ordering: .relaxed)
        rxPending.store(true, ordering: .releasing)
    }

    func handle(device: borrowing Device.Bound) -> IRQReturn {
        guard rxPending.exchange(false, ordering: .acquiringAndReleasing) else { return .none }  // not ours
        interrupts.add(1, ordering: .relaxed)
        if hardIRQReadsDevres, let stats = stats.withLock({ $0 }) {
            _ = stats.tryAccess { $0.events.add(1, ordering: .relaxed) }
        }
        queue.enqueue(self)  // the bottom half: no allocation, never sleeps
        return .handled
    }

    /// The bottom half: every packet on the ring. Process context, so it may read the
    /// statistics Devres whatever its strategy.
    func run() {
        let taken = ring.exchange(0, ordering: .acquiring)
        packets.add(taken, ordering: .relaxed)
        runs.add(1, ordering: .relaxed)
        if let stats = stats.withLock({ $0 }) { _ = stats.tryAccess { $0.packets.add(taken, ordering: .relaxed) } }
    }
}

/// A disk on a threaded ONESHOT level line: the primary wakes the thread, which completes
/// the requests (sleeping a little: process context) and deasserts the line.
final class Disk: ThreadedHandler {
    let controller: IRQController
    let irq: IRQNumber
    let wakes = Atomic<UInt64>(0)
    let completions = Atomic<UInt64>(0)
    let queue = Mutex<Devres<DeviceStats>?>(nil)
    init(controller: IRQController, irq: IRQNumber) {
        self.controller = controller
        self.irq = irq
    }
    func handle(device: borrowing Device.Bound) -> ThreadedIRQReturn {
        wakes.add(1, ordering: .relaxed)
        return .wakeThread
    }
    func handleThreaded(device: borrowing Device.Bound) -> IRQReturn {
        usleep(200)  // the "transfer": allowed here, never in a hard-IRQ handler
        completions.add(1, ordering: .relaxed)
        if let queue = queue.withLock({ $0 }) { _ = queue.tryAccess { $0.events.add(1, ordering: .relaxed) } }
        try? controller.deassertLine(irq)
        return .handled
    }
}

/// A counter of interrupts (timer ticks, UART bytes), also counted in its device's
/// statistics when hard-IRQ handlers may read a Devres.
final class Counter: Handler {
    let count = Atomic<UInt64>(0)
    let stats = Mutex<Devres<DeviceStats>?>(nil)
    let hardIRQReadsDevres: Bool
    init(hardIRQReadsDevres: Bool) { self.hardIRQReadsDevres = hardIRQReadsDevres }
    func handle(device: borrowing Device.Bound) -> IRQReturn {
        count.add(1, ordering: .relaxed)
        if hardIRQReadsDevres, let stats = stats.withLock({ $0 }) {
            _ = stats.tryAccess { $0.events.add(1, ordering: .relaxed) }
        }
        return .handled
    }
}

final class Machine: @unchecked Sendable {
    // SAFETY: configured in init, then read-only; the rest are atomics and locked values.
    let controller: IRQController
    let strategy: RevocationStrategy
    let nicLine: IRQNumber, diskLine: IRQNumber, timerLine: IRQNumber, uartLine: IRQNumber
    let devices: [Device]
    /// The NICs' bottom halves' queue.
    let rxQueue: Workqueue
    let eth0: NIC, eth1: NIC
    let disk: Disk
    let timer: Counter, uart: Counter
    let registrations = Mutex<[AnyObject]>([])
    /// Each device's statistics Devres, with the device's name.
    let devres = Mutex<[(device: String, stats: Devres<DeviceStats>)]>([])
    let stop = Atomic<Bool>(false)

    init(cpus: Int, strategy: RevocationStrategy) throws {
        controller = try IRQController(name: "irqsim", cpus: cpus)
        self.strategy = strategy
        nicLine = try controller.addEventFDLine()
        diskLine = try controller.addSoftwareLine(trigger: .triggerHigh)
        timerLine = try controller.addTimerLine()
        uartLine = try controller.addSignalLine()
        devices = ["eth0", "eth1", "sda", "timer0", "ttyS0"].map { Device(name: $0) }
        // Under the mutex strategy a hard-IRQ handler may not read a Devres (a mutex may
        // sleep): it uses its own handler data only.
        rxQueue = try Workqueue(name: "nic_rx")
        eth0 = NIC(name: "eth0", queue: rxQueue, hardIRQReadsDevres: strategy == .rcu)
        eth1 = NIC(name: "eth1", queue: rxQueue, hardIRQReadsDevres: strategy == .rcu)
        disk = Disk(controller: controller, irq: diskLine)
        timer = Counter(hardIRQReadsDevres: strategy == .rcu)
        uart = Counter(hardIRQReadsDevres: strategy == .rcu)
    }

    /// A device's statistics, as a Devres of the strategy in use.
    private func stats(_ bound: borrowing Device.Bound) throws -> Devres<DeviceStats> {
        let d = try Devres(bound, DeviceStats(), strategy: strategy)
        let name = bound.device.name
        devres.withLock { $0.append((name, d)) }
        return d
    }

    private func bindAll() throws {
        let s = strategy
        for (device, nic) in [(devices[0], eth0), (devices[1], eth1)] {
            try device.bind(ClosureDriver(name: "e1000-sim", probe: { [self] bound in
                nic.stats.withLock { $0 = nil }
                let ring = try stats(bound)
                nic.stats.withLock { $0 = ring }
                // The bottom half before the IRQ: unbind frees the IRQ first, then disables
                // the work (no handler is left to queue it again).
                try bound.device.addWork(bound, nic)
                let r = try Registration(
                    bound, controller: controller, irq: nicLine, flags: .shared, name: nic.name, strategy: s, handler: nic)
                registrations.withLock { $0.append(r) }
            }))
        }
        try devices[2].bind(ClosureDriver(name: "ahci-sim", probe: { [self] bound in
            let q = try stats(bound)
            disk.queue.withLock { $0 = q }
            let r = try ThreadedRegistration(
                bound, controller: controller, irq: diskLine, flags: [.oneShot, .triggerHigh], name: "sda",
                strategy: s, handler: disk)
            registrations.withLock { $0.append(r) }
        }))
        try devices[3].bind(ClosureDriver(name: "hpet-sim", probe: { [self] bound in
            let ticks = try stats(bound)
            timer.stats.withLock { $0 = ticks }
            let r = try Registration(bound, controller: controller, irq: timerLine, name: "timer0", strategy: s, handler: timer)
            registrations.withLock { $0.append(r) }
        }))
        try devices[4].bind(ClosureDriver(name: "serial-sim", probe: { [self] bound in
            let bytes = try stats(bound)
            uart.stats.withLock { $0 = bytes }
            let r = try Registration(bound, controller: controller, irq: uartLine, name: "ttyS0", strategy: s, handler: uart)
            registrations.withLock { $0.append(r) }
        }))
    }

    func run(seconds: Double, typist: Bool) throws {
        let termination = try TerminationSignal()
        try bindAll()
        let signal = try controller.signal(of: uartLine)
        print("irqsim: 5 devices on \(controller.cpuCount) CPUs, strategy \(strategy), pid \(getpid())")
        print("raise the ttyS0 line from another terminal:  kill -s \(SignalAllocator.signalName(signal)) \(getpid())")
        fflushStdout()
        try controller.armTimer(timerLine, initial: .milliseconds(4), interval: .milliseconds(4))
        let child = typist ? try Helper.spawn(["signal", "\(getpid())", "\(signal)", "1000000", "50000"]) : nil
        defer {
            child?.kill()
            _ = try? child?.wait(timeout: .seconds(5))
        }
        let nicFirmware = try controller.eventFD(of: nicLine)
        var threads: [KThread] = []
        threads.append(try KThread(name: "nic-fw") { [self] in
            var one: UInt64 = 1
            var n = 0
            while !stop.load(ordering: .relaxed) {
                (n % 3 == 0 ? eth1 : eth0).receive()
                _ = write(nicFirmware, &one, 8)
                n += 1
                usleep(2_000)
            }
        })
        threads.append(try KThread(name: "ahci-fw") { [self] in
            while !stop.load(ordering: .relaxed) {
                try? controller.assertLine(diskLine)
                usleep(5_000)
            }
        })
        threads.append(try KThread(name: "stats-reader") { [self] in
            while !stop.load(ordering: .relaxed) {
                for d in devres.withLock({ $0 }) { _ = d.stats.tryAccess { $0.reads.add(1, ordering: .relaxed) } }
                usleep(1_000)
            }
        })

        let start = monotonicNanoseconds()
        var second = 0
        var interrupted = false
        let end = seconds == 0 ? UInt64.max : start + UInt64(seconds * 1e9)
        while monotonicNanoseconds() < end {
            let next = min(end, start + UInt64(second + 1) * 1_000_000_000)
            if (try? termination.wait(timeout: Deadline(nanoseconds: next).remaining)) != nil {
                interrupted = true
                break
            }
            second += 1
            print("\n[\(second)s]")
            print(controller.procInterrupts, terminator: "")
            print(Self.workqueueView(), terminator: "")
            fflushStdout()
        }
        stop.store(true, ordering: .relaxed)
        for thread in threads { try thread.join() }
        try? controller.disarmTimer(timerLine)
        try? controller.deassertLine(diskLine)
        summarize(interrupted: interrupted, seconds: Double(monotonicNanoseconds() - start) / 1e9)
    }

    /// One line per live workqueue: what it ran and what waits (the kernel's
    /// `/sys/kernel/debug/workqueue`-style view, as `cat /proc/interrupts` is for IRQs).
    static func workqueueView() -> String {
        var out = "  workqueue           executed   pending   running\n"
        for q in Workqueue.all {
            let name = q.name.padding(toLength: 18, withPad: " ", startingAt: 0)
            out += "  \(name)\(pad(fmtCount(q.executed), 10))\(pad("\(q.pending)", 10))\(pad("\(q.running)", 10))\n"
        }
        return out
    }

    private func summarize(interrupted: Bool, seconds: Double) {
        let table = controller.procInterrupts
        // The Devres data, read while the devices are still bound (unbind releases it).
        let devresData = devres.withLock { $0 }.map { entry in
            let counts = entry.stats.tryAccess {
                (events: $0.events.load(ordering: .relaxed), reads: $0.reads.load(ordering: .relaxed))
            }
            return "\(entry.device) \(fmtCount(counts?.events ?? 0)) events \(fmtCount(counts?.reads ?? 0)) reads"
        }
        var unbindSeconds = 0.0
        var unbindGracePeriods: UInt64 = 0
        for device in devices where device.isBound {
            if let report = try? device.unbind(mode: .batched) {
                unbindSeconds += report.duration.seconds
                unbindGracePeriods += report.gracePeriods
            }
        }
        print("\nirqsim: \(interrupted ? "interrupted" : "done") after \(fmtSeconds(seconds)) s; final /proc/interrupts:")
        print(table, terminator: "")
        print("interrupts per line:")
        for irq in controller.lines {
            guard let s = try? controller.stats(irq) else { continue }
            print("  irq \(irq) (\(s.chip)): handled \(fmtCount(s.handled)), raised \(fmtCount(s.raised)), unhandled \(fmtCount(s.unhandled))")
        }
        print("handlers: eth0 \(fmtCount(eth0.interrupts.load(ordering: .relaxed))) interrupts, eth1 \(fmtCount(eth1.interrupts.load(ordering: .relaxed))) interrupts, "
              + "sda \(fmtCount(disk.completions.load(ordering: .relaxed))) completions, "
              + "timer0 \(fmtCount(timer.count.load(ordering: .relaxed))) ticks, ttyS0 \(fmtCount(uart.count.load(ordering: .relaxed))) signals")
        // Unbind disabled the bottom halves (after freeing the IRQ): what is left on a ring
        // arrived after the last interrupt was handled.
        print("bottom halves (nic_rx): eth0 \(fmtCount(eth0.packets.load(ordering: .relaxed))) packets in \(fmtCount(eth0.runs.load(ordering: .relaxed))) runs, "
              + "eth1 \(fmtCount(eth1.packets.load(ordering: .relaxed))) packets in \(fmtCount(eth1.runs.load(ordering: .relaxed))) runs; "
              + "after unbind: eth0 \(eth0.work.isDisabled ? "disabled" : "enabled"), eth1 \(eth1.work.isDisabled ? "disabled" : "enabled")")
        print("workqueues:")
        print(Self.workqueueView(), terminator: "")
        print("Devres data (events by handlers, reads by a reader thread): " + devresData.joined(separator: "; ")
              + (strategy == .mutex ? " (mutex: hard-IRQ handlers use only their registration's data)" : ""))
        print("unbind (batched, all devices): \(String(format: "%.3f", unbindSeconds * 1e3)) ms, \(unbindGracePeriods) grace period(s); "
              + "grace periods waited in all: \(fmtCount(RCU.gracePeriodsWaited))")
        let reports = ([controller.log] + devices.map(\.log)).flatMap(\.reports)
        print("checker reports: \(reports.count)")
        for report in reports.prefix(5) { print("  \(report.headline)") }
        registrations.withLock { $0.removeAll() }
    }
}

/// `text` right-aligned in `width` columns.
func pad(_ text: String, _ width: Int) -> String {
    String(repeating: " ", count: max(0, width - text.count)) + text
}

/// Flushes `print` output now (it is block-buffered when stdout is not a terminal).
func fflushStdout() { fflush(nil) }
