import Foundation
import IRQEmu
import Synchronization
import TestSupport

/// A counter shared with handlers.
final class Hits: Sendable {
    let count = Atomic<Int>(0)
    init() {}
    @discardableResult func hit() -> Int { count.add(1, ordering: .relaxed).newValue }
    var value: Int { count.load(ordering: .relaxed) }
}

/// Runs `body` on a registered thread (tests run on the concurrency pool; sleeping calls
/// like quiesce and freeIRQ are `noasync`) and fails the test if it does not return.
func onThread<R: Sendable>(timeout: Double = 60, _ body: @escaping @Sendable () throws -> R) throws -> R {
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
