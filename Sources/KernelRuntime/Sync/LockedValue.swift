import Glibc

/// A value behind a `Lock`.
package final class LockedValue<Value> {
    // `value` is only read or written inside `lock`.
    private let lock = Lock()
    private var value: Value

    package init(_ value: Value) { self.value = value }

    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

// SAFETY: the value is only reached with the lock held, so sharing the lock shares the value
// between threads one at a time: safe when the value itself may cross threads (the model of
// NIOLockedValueBox; `Synchronization.Mutex` instead takes `sending` values).
extension LockedValue: @unchecked Sendable where Value: Sendable {}
