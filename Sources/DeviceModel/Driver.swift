/// A driver: what `Device.bind` probes and `Device.unbind` removes.
///
/// Both callbacks run in process context on the thread that binds or unbinds, with proof
/// that the device is bound (`Device.Bound`, borrowed: it cannot be kept). Resources the
/// driver registers on the device (`Devres`, `addAction`, IRQ registrations) are released
/// after `remove`, newest first, or at once if `probe` throws.
public protocol Driver: Sendable {
    /// The driver's name, as `/sys/bus/*/drivers` would show it.
    var name: String { get }
    /// Sets the device up. Throwing makes the bind fail and releases what was registered.
    func probe(_ device: borrowing Device.Bound) throws
    /// Tears the device down before its resources are released.
    func remove(_ device: borrowing Device.Bound)
}

extension Driver {
    /// Default: the type's name.
    public var name: String { String(describing: Self.self) }
    /// Default: nothing; the device's resources are still released after it.
    public func remove(_ device: borrowing Device.Bound) {}
}

/// A driver made of closures, for test harnesses and small programs.
///
/// A trailing closure is the probe: `ClosureDriver(name: "drv") { bound in … }`.
public struct ClosureDriver: Driver {
    /// The driver's name.
    public let name: String
    private let onProbe: @Sendable (borrowing Device.Bound) throws -> Void
    private let onRemove: @Sendable (borrowing Device.Bound) -> Void

    /// A driver named `name` whose `probe` and `remove` run the given closures.
    ///
    /// `probe` comes first, so a trailing closure binds to it (Swift's forward scan
    /// matches a trailing closure to the first closure parameter).
    public init(
        name: String = "closure-driver",
        probe: @escaping @Sendable (borrowing Device.Bound) throws -> Void = { _ in },
        remove: @escaping @Sendable (borrowing Device.Bound) -> Void = { _ in }
    ) {
        self.name = name
        self.onProbe = probe
        self.onRemove = remove
    }

    /// Runs the `probe` closure.
    public func probe(_ device: borrowing Device.Bound) throws { try onProbe(device) }
    /// Runs the `remove` closure.
    public func remove(_ device: borrowing Device.Bound) { onRemove(device) }
}
