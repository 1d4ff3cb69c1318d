import Glibc

/// A value behind a `Lock`.
package final class LockedValue<Value>: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `value` is only read or written inside `lock`.
    private let lock = Lock()
    private var value: Value

    package init(_ value: Value) { self.value = value }

    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
