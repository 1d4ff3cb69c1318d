import Foundation

/// Orders the tests that need the lock validator's process-wide state: tests that expect
/// (or rule out) validator reports run `shared` (many at once), and tests that reset the
/// validator, overflow its tables or switch it off run `exclusive` (alone among them).
/// Tests run in parallel in one process, and a reset or an overflow would otherwise hide
/// another test's report.
public enum LockdepGate {
    private static let condition = NSCondition()
    nonisolated(unsafe) private static var readers = 0
    nonisolated(unsafe) private static var writer = false
    nonisolated(unsafe) private static var writersWaiting = 0

    /// Runs `body` alongside other `shared` bodies, never during an `exclusive` one.
    public static func shared<R>(_ body: () throws -> R) rethrows -> R {
        condition.lock()
        while writer || writersWaiting > 0 { condition.wait() }
        readers += 1
        condition.unlock()
        defer {
            condition.lock()
            readers -= 1
            condition.broadcast()
            condition.unlock()
        }
        return try body()
    }

    /// Runs `body` while no other gated body runs.
    public static func exclusive<R>(_ body: () throws -> R) rethrows -> R {
        condition.lock()
        writersWaiting += 1
        while writer || readers > 0 { condition.wait() }
        writersWaiting -= 1
        writer = true
        condition.unlock()
        defer {
            condition.lock()
            writer = false
            condition.broadcast()
            condition.unlock()
        }
        return try body()
    }
}
