import DeviceModel
import Foundation
import RCU
import TestSupport

/// A driver whose probe and remove are closures, for tests.
struct TestDriver: Driver {
    let name: String
    let onProbe: @Sendable (borrowing Device.Bound) throws -> Void
    let onRemove: @Sendable (borrowing Device.Bound) -> Void

    init(
        _ name: String = "test-driver",
        probe: @escaping @Sendable (borrowing Device.Bound) throws -> Void = { _ in },
        remove: @escaping @Sendable (borrowing Device.Bound) -> Void = { _ in }
    ) {
        self.name = name
        self.onProbe = probe
        self.onRemove = remove
    }

    func probe(_ device: borrowing Device.Bound) throws { try onProbe(device) }
    func remove(_ device: borrowing Device.Bound) { onRemove(device) }
}

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
