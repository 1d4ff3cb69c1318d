import Foundation
import IRQEmu
import Synchronization
import TestSupport

extension IRQController {
    /// Raises `irq` and waits until the interrupt has been delivered, `times` times: one
    /// interrupt outstanding at a time. A timeout is reported at the caller's line.
    func raiseAndQuiesce(_ irq: IRQNumber, times: Int = 1, file: StaticString = #fileID, line: UInt = #line) throws(IRQError) {
        for _ in 0..<times {
            try raise(irq)
            try quiesce(file: file, line: line)
        }
    }
}

/// A counter shared with handlers.
final class Hits: Sendable {
    let count = Atomic<Int>(0)
    init() {}
    @discardableResult func hit() -> Int { count.add(1, ordering: .relaxed).newValue }
    var value: Int { count.load(ordering: .relaxed) }
}

/// Holds an IRQ thread inside its first run until released (10 s at most, so a failed
/// test never leaves it blocked): lets a test act while the thread is busy.
final class FirstRunGate: Sendable {
    /// Runs of the thread function so far.
    let runs = Hits()
    private let entered = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)
    init() {}
    /// Call first in the thread function: its first run waits here for `release()`.
    func pass() {
        guard runs.hit() == 1 else { return }
        entered.signal()
        _ = released.wait(timeout: .now() + 10)
    }
    /// Waits (10 s at most) until the first run is held in `pass()`.
    func waitUntilHeld() throws {
        guard entered.wait(timeout: .now() + 10) == .success else { throw TimedOut() }
    }
    func release() { released.signal() }
}

/// Runs `body` on a registered thread (tests run on the concurrency pool; sleeping calls
/// like quiesce and freeIRQ are `noasync`) and fails the test if it does not return.
func onThread<R: Sendable>(timeout: Duration = .seconds(60), _ body: @escaping @Sendable () throws -> R) throws -> R {
    let result = Threads.onThread(timeout: timeout) { () -> Result<R, any Error> in Result { try body() } }
    guard let result else { throw TimedOut() }
    return try result.get()
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String { "did not finish in time (deadlock?)" }
}

/// Busy-waits (without sleeping) up to `seconds` for `condition`: for use inside hard-IRQ
/// handlers, which may not sleep.
func spin(upTo seconds: Double, until condition: () -> Bool) -> Bool {
    let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
    while !condition() {
        if monotonicNanoseconds() > deadline { return false }
    }
    return true
}

/// A dev_id: an identity for a shared action.
final class Cookie: Sendable {
    let name: String
    init(_ name: String = "cookie") { self.name = name }
}
