import Foundation
import RCU

/// Helpers for tests that need real threads (RCU readers must run on registered pthreads,
/// not on the concurrency pool).
public enum Threads {
    /// Starts `count` `KThread`s that begin `body` together (an "everybody here / go"
    /// barrier) and joins them. Fails the caller with a precondition if a thread does not
    /// finish within `timeout` seconds, so a deadlock fails the test instead of hanging it.
    public static func run(
        _ count: Int, name: String = "test", timeout: Double = 60,
        _ body: @escaping @Sendable (Int) -> Void
    ) {
        let arrived = DispatchSemaphore(value: 0)
        let go = DispatchSemaphore(value: 0)
        let threads = (0..<count).map { index in
            KThread(name: "\(name)-\(index)") {
                arrived.signal()
                go.wait()
                body(index)
            }
        }
        for _ in 0..<count { arrived.wait() }
        for _ in 0..<count { go.signal() }
        for thread in threads {
            precondition(thread.join(timeout: timeout), "thread \(thread.name) did not finish within \(timeout) s")
        }
    }

    /// Runs `body` on a fresh `KThread` and returns its result, or nil if it did not
    /// finish within `timeout` seconds (the thread is then left running: the test fails).
    public static func onThread<R: Sendable>(
        name: String = "test", timeout: Double = 30, _ body: @escaping @Sendable () -> R
    ) -> R? {
        let result = Box<R?>(nil)
        let thread = KThread(name: name) { result.set(body()) }
        guard thread.join(timeout: timeout) else { return nil }
        return result.get()
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
