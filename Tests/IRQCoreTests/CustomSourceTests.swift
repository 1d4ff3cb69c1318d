import Foundation
import IRQEmu
import Synchronization
import TestSupport
import Testing

// Interrupt sources a harness writes itself, against the public API only (this file imports
// nothing of irqemu but IRQEmu): one driven by a socket, one by the test's own clock with a level
// input. The core treats them as it treats its own eventfd, signal and timer lines.

/// A line raised by bytes arriving on a socket: one end is the "device", the CPU watches
/// the other. Each byte is one raise.
final class SocketSource: InterruptSource, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): the descriptors are immutable after init.
    let line: Int32
    let device: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw POSIXError(.EMFILE)
        }
        (line, device) = (fds[0], fds[1])
    }

    deinit {
        close(line)
        close(device)
    }

    var chipName: String { "socket" }
    var hwirq: Int { Int(line) }
    var fileDescriptor: Int32? { line }

    /// Drains the socket: one raise per byte. Hard-IRQ context: no allocation.
    func acknowledge() -> UInt64 {
        var total: UInt64 = 0
        var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        while true {
            let n = withUnsafeMutableBytes(of: &buffer) { read(line, $0.baseAddress, $0.count) }
            guard n > 0 else { return total }
            total += UInt64(n)
        }
    }

    func raise() throws(IRQError) { send(bytes: 1) }

    /// The device side: writes `bytes` bytes.
    func send(bytes: Int) {
        let payload = [UInt8](repeating: 0x5a, count: bytes)
        _ = payload.withUnsafeBytes { write(device, $0.baseAddress, $0.count) }
    }
}

/// A level-triggered line driven by the test's own clock: its input is asserted while the
/// clock is at or past `assertAt`; `advance(to:)` moves the clock and triggers the line.
final class ClockSource: InterruptSource, LevelInput, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `line` is set once by attach(to:) before the line is
    // published; the rest is atomic.
    private var line: InterruptLine?
    let now = Atomic<Int>(0)
    let assertAt = Atomic<Int>(.max)

    var chipName: String { "testclock" }
    var hwirq: Int { 0 }
    var fileDescriptor: Int32? { nil }
    var levelInput: (any LevelInput)? { self }

    func attach(to line: InterruptLine) { self.line = line }
    func raise() throws(IRQError) { line?.trigger() }

    func advance(to time: Int) {
        now.store(time, ordering: .sequentiallyConsistent)
        if isAsserted { line?.trigger() }
    }

    var isAsserted: Bool { now.load(ordering: .sequentiallyConsistent) >= assertAt.load(ordering: .sequentiallyConsistent) }

    func setAsserted(_ asserted: Bool) throws(IRQError) {
        assertAt.store(asserted ? now.load(ordering: .sequentiallyConsistent) : .max, ordering: .sequentiallyConsistent)
        if asserted { line?.trigger() }
    }

    func lineUnmasked() { if isAsserted { line?.trigger() } }
}

@Suite(.timeLimit(.minutes(1)))
struct CustomSourceTests {
    /// Bytes written to the socket raise the line; each byte counts as a raise; the line
    /// shows in /proc/interrupts under the source's chip name.
    @Test func aSocketDrivenSourceRaisesItsLine() throws {
        let controller = try IRQController()
        let source = try SocketSource()
        let irq = try controller.addLine { _ in source }
        let hits = Atomic<Int>(0)
        try onThread {
            try controller.requestIRQ(irq, name: "sock0") { _ in hits.add(1, ordering: .relaxed); return .handled }
            for _ in 0..<10 {
                source.send(bytes: 3)
                try controller.quiesce()
            }
            try controller.raise(irq)
            try controller.quiesce()
        }
        let stats = try controller.stats(irq)
        #expect(hits.load(ordering: .relaxed) == 11)
        #expect(stats.raised == 31)
        #expect(stats.chip == "socket")
        #expect(controller.procInterrupts.contains("socket"))
    }

    /// A level line on a source with a `LevelInput`: it fires while asserted (again after
    /// each unmask, which a ONESHOT thread delays), and stops once the handler deasserts.
    @Test func aClockDrivenLevelSourceFiresWhileAsserted() throws {
        let controller = try IRQController()
        let clock = ClockSource()
        let irq = try controller.addLine(trigger: .triggerHigh) { _ in clock }
        let runs = Atomic<Int>(0)
        try onThread {
            try controller.requestThreadedIRQ(irq, flags: [.oneShot, .triggerHigh], name: "clock", handler: nil) { _ in
                // The device stays asserted for three runs, then the handler clears it.
                if runs.add(1, ordering: .relaxed).newValue == 3 { try? controller.deassertLine(irq) }
                return .handled
            }
            clock.assertAt.store(100, ordering: .sequentiallyConsistent)
            clock.advance(to: 50)
            try controller.quiesce()
            #expect(runs.load(ordering: .relaxed) == 0, "not asserted before its time")
            clock.advance(to: 100)
            try controller.quiesce()
        }
        #expect(runs.load(ordering: .relaxed) == 3)
        #expect(try !controller.stats(irq).masked)
        #expect(try controller.stats(irq).isLevel)
    }

    /// A source without a level input cannot back a level line, and a level request on it
    /// is refused: the capability is the protocol's, not a downcast.
    @Test func anEdgeOnlySourceRefusesLevel() throws {
        let controller = try IRQController()
        let source = try SocketSource()
        let error = caught(IRQError.self) { _ = try controller.addLine(trigger: .triggerHigh) { _ in source } }
        #expect(error?.errno == .invalidArgument)
        let irq = try controller.addLine { _ in source }
        #expect(caught(IRQError.self) { try controller.assertLine(irq) }?.errno == .invalidArgument)
    }
}
