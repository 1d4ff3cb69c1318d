import Foundation
import KernelRuntime
import Testing

/// Helpers for tests that need real threads (RCU readers must run on registered pthreads,
/// not on the concurrency pool).
public enum Threads {
    /// Starts `count` `KThread`s that begin `body` together (an "everybody here / go"
    /// barrier) and joins them, all within `timeout`. A thread that does not start
    /// or finish in time is recorded as a test failure (`Issue.record`, on the caller's
    /// task) and left running, detached, so a deadlock fails the test instead of hanging
    /// the run or killing the process. Returns whether every thread finished in time.
    @discardableResult
    public static func run(
        _ count: Int, name: String = "test", timeout: Duration = .seconds(60),
        fileID: String = #fileID, filePath: String = #filePath, line: Int = #line, column: Int = #column,
        _ body: @escaping @Sendable (Int) -> Void
    ) -> Bool {
        let deadline = Deadline.after(timeout)
        let arrived = DispatchSemaphore(value: 0)
        let go = DispatchSemaphore(value: 0)
        let threads = (0..<count).map { index in
            try! KThread(name: "\(name)-\(index)") {
                arrived.signal()
                go.wait()
                body(index)
            }
        }
        var started = 0
        while started < count, arrived.wait(timeout: .now() + .nanoseconds(Int(remaining(deadline)))) == .success { started += 1 }
        // Release every thread even if some did not arrive, so none waits on `go` forever.
        for _ in 0..<count { go.signal() }
        var late: [String] = []
        for thread in threads {
            if (try? thread.join(timeout: deadline.remaining)) == nil { late.append(thread.name) }
        }
        guard late.isEmpty else {
            Issue.record("threads \(late) did not finish within \(timeout) s (deadlock or lost wakeup?)", sourceLocation: SourceLocation(fileID: fileID, filePath: filePath, line: line, column: column))
            return false
        }
        return true
    }

    /// Nanoseconds left until `deadline` (0 once it has passed).
    private static func remaining(_ deadline: Deadline) -> UInt64 {
        let now = monotonicNanoseconds()
        return deadline.nanoseconds > now ? deadline.nanoseconds - now : 0
    }

    /// Runs `body` on a fresh `KThread` and returns its result, or nil if it did not
    /// finish within `timeout`: that is recorded as a test failure on the caller's
    /// task, and the thread is left running, detached. An error `body` throws is rethrown
    /// on the caller's task (a failed setup fails the test, not the process).
    public static func onThread<R: Sendable, E: Error>(
        name: String = "test", timeout: Duration = .seconds(30),
        fileID: String = #fileID, filePath: String = #filePath, line: Int = #line, column: Int = #column,
        _ body: @escaping @Sendable () throws(E) -> R
    ) throws(E) -> R? {
        let result = Box<Result<R, E>?>(nil)
        let thread = try! KThread(name: name) {
            do throws(E) { result.set(.success(try body())) } catch { result.set(.failure(error)) }
        }
        guard (try? thread.join(timeout: timeout)) != nil else {
            Issue.record("thread \(thread.name) did not finish within \(timeout) s (deadlock or lost wakeup?)", sourceLocation: SourceLocation(fileID: fileID, filePath: filePath, line: line, column: column))
            return nil
        }
        return try result.get()?.get()
    }
}

/// A value shared between test threads, behind a lock.
public final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    public init(_ value: T) { self.value = value }
    public func get() -> T { lock.withLock { value } }
    public func set(_ newValue: T) { lock.withLock { value = newValue } }
    @discardableResult
    public func update<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&value) } }
}

/// Iteration counts for concurrency tests, scaled down under ThreadSanitizer (where each
/// read-side section costs hundreds of nanoseconds).
public enum Scale {
    #if IRQEMU_TSAN
    public static let isTSan = true
    #else
    public static let isTSan = false
    #endif

    public static func iterations(_ n: Int, tsan: Int? = nil) -> Int {
        isTSan ? (tsan ?? max(1, n / 20)) : n
    }
}

/// The error `body` threw, as `E`; nil if it returned (or threw something else).
public func caught<E: Error>(_ type: E.Type, _ body: () throws -> Void) -> E? {
    do {
        try body()
        return nil
    } catch {
        return error as? E
    }
}
