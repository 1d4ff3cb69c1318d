import Foundation
import IRQEmu
import Synchronization

/// One known driver bug (or its correct twin), as the gallery runs it: a driver to bind, the
/// work its process-context threads do while its interrupts storm, and how it is unbound.
/// Every case runs in the same loop (`GalleryLoop`); nothing here forces a timing.
struct GalleryCase: Sendable {
    /// A short name (`ab-ba`), the same for the bug and its twin.
    let name: String
    /// The bug, in a line.
    let bug: String
    /// The detector meant to catch it.
    let detector: String
    /// Whether it is caught only with faults injected.
    let needsFaults: Bool
    /// Software lines the device gets as IRQ resources.
    let lines: Int
    /// Makes the driver for one run (the buggy one, or the twin).
    let makeDriver: @Sendable (GalleryEnvironment, _ buggy: Bool) -> any GalleryDriver
}

/// What a case's driver and threads share during one run.
final class GalleryEnvironment: Sendable {
    let controller: IRQController
    let device: Device
    let lines: [IRQNumber]
    let log: KernelLog

    init(controller: IRQController, device: Device, lines: [IRQNumber], log: KernelLog) {
        self.controller = controller
        self.device = device
        self.lines = lines
        self.log = log
    }
}

/// A gallery driver: the kernel driver, plus the process-context work the loop runs from
/// two threads while its lines storm, and the unbind (which a case may do under a lock).
protocol GalleryDriver: Driver {
    /// One piece of process-context work (an ioctl, say); called in a loop from two threads.
    func work(_ thread: Int)
    /// Unbinds the device (plainly, unless the bug is in how).
    func unbind(_ device: Device) throws
}

extension GalleryDriver {
    func work(_ thread: Int) {}
    func unbind(_ device: Device) throws { try device.unbind() }
}

/// The result of running one case once.
struct GalleryOutcome: Sendable {
    /// When the first report came, from the start of the run, or nil if none came.
    let detectedAfter: Double?
    /// The first report's kind and headline.
    let kind: KernelReport.Kind?
    let headline: String?
    /// Reports in all.
    let reports: Int
    /// Bind/unbind cycles run.
    let cycles: Int

    /// Which of irqemu's detectors made the first report.
    var detector: String {
        guard let kind, let headline else { return "-" }
        switch kind {
        case .lockdep: return "lock validator"
        case .teardownOrder: return "teardown-order check"
        case .sleepInAtomic: return "atomic-context checker"
        case .violation where headline.contains("still held after"): return "leak check"
        case .violation where headline.contains("access to released"): return "released-Devres check"
        case .violation where headline.contains(", cancelled with "): return "non-sync cancel check"
        case .violation: return "violation"
        case .warning: return "checker (warning)"
        }
    }
}

/// The loop every case runs in: bind; a thread storming the device's lines and two threads
/// doing the driver's work; after a cycle, stop them, wait for the interrupts to be
/// delivered, unbind; repeat until the first report, or the time limit.
enum GalleryLoop {
    static func run(
        _ gallery: GalleryCase, buggy: Bool, faults: Faults?, limit: Double, cycleMilliseconds: Int = 20,
        stopAtFirstReport: Bool = true
    ) throws -> GalleryOutcome {
        // Each run starts from a validator that knows nothing: a problem is reported once.
        Lockdep.reset()
        let log = KernelLog(name: "gallery-\(gallery.name)")
        let controller = try IRQController(name: "gallery", cpus: 2, log: log, faults: faults)
        defer { controller.shutdown() }
        let lines = try (0..<gallery.lines).map { _ in try controller.addSoftwareLine() }
        let device = Device(
            name: "\(gallery.name)0", resources: lines.map { .irq($0, on: controller) }, log: log, faults: faults)
        let environment = GalleryEnvironment(controller: controller, device: device, lines: lines, log: log)
        let start = monotonicNanoseconds()
        let end = start + UInt64(limit * 1e9)
        var cycles = 0
        var firstAt: UInt64?
        while monotonicNanoseconds() < end {
            cycles += 1
            let driver = gallery.makeDriver(environment, buggy)
            if (try? device.bind(driver)) != nil {
                let stop = Atomic<Bool>(false)
                var threads: [KThread] = []
                threads.append(try KThread(name: "storm") {
                    while !stop.load(ordering: .relaxed) {
                        for line in lines { try? controller.raise(line) }
                        usleep(50)
                    }
                })
                for index in 0..<2 {
                    threads.append(try KThread(name: "worker\(index)") {
                        KernelLog.withCurrent(log) {
                            while !stop.load(ordering: .relaxed) {
                                driver.work(index)
                                usleep(20)
                            }
                        }
                    })
                }
                usleep(UInt32(cycleMilliseconds * 1000))
                stop.store(true, ordering: .relaxed)
                for thread in threads { try thread.join() }
                try? controller.quiesce(timeout: .seconds(10))
                try KernelLog.withCurrent(log) { try driver.unbind(device) }
            }
            if firstAt == nil, log.reportCount > 0 { firstAt = monotonicNanoseconds() }
            if firstAt != nil && stopAtFirstReport { break }
        }
        let first = log.reports.first
        // When the report was made, not when the loop looked.
        let detected = first.map { $0.time } ?? firstAt
        return GalleryOutcome(
            detectedAfter: detected.map { Double($0 &- start) / 1e9 }, kind: first?.kind, headline: first?.headline,
            reports: log.reportCount, cycles: cycles)
    }
}
