import DeviceModel
import Foundation
import KernelRuntime
import RCU
import TestSupport

/// Devres handles created during a probe, handed back to the test.
final class Handles<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Devres<T>] = []
    func append(_ d: Devres<T>) { lock.withLock { items.append(d) } }
    var all: [Devres<T>] { lock.withLock { items } }
    func removeAll() { lock.withLock { items.removeAll() } }
    func take() -> [Devres<T>] { lock.withLock { defer { items.removeAll() }; return items } }
}

struct Failure: Error, CustomStringConvertible {
    var description: String { "probe failed on purpose" }
}
