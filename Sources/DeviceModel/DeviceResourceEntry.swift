extension Device {
    /// A platform resource a device is created with (the kernel's `struct resource` of a
    /// platform device): an IRQ line, a memory range, a clock. The device model stores it
    /// opaquely, by kind, index and name; the layer that defines a kind interprets its
    /// value (IRQCore's `Device.Resource.irq(_:on:name:)` and `Device.Bound.irq(at:)`).
    public struct Resource: Sendable {
        /// What the resource is (`IORESOURCE_IRQ`, `IORESOURCE_MEM`, …).
        public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
            /// The kind's name (`"irq"` for an IRQ line).
            public let rawValue: String
            /// The kind named `rawValue`.
            public init(rawValue: String) { self.rawValue = rawValue }
            /// The kind's name.
            public var description: String { rawValue }
        }

        /// The resource's kind.
        public let kind: Kind
        /// Its name, for lookup by name (`platform_get_irq_byname`), if it has one.
        public let name: String?
        /// What the kind's layer stored.
        public let value: any Sendable

        /// A resource of `kind`, named `name`, carrying `value`.
        public init(kind: Kind, name: String? = nil, value: any Sendable) {
            self.kind = kind
            self.name = name
            self.value = value
        }
    }

    /// The `index`th resource of `kind` (counting only that kind, as
    /// `platform_get_resource` does), or nil.
    public func resource(_ kind: Resource.Kind, at index: Int) -> Resource? {
        let matching = resources.filter { $0.kind == kind }
        return matching.indices.contains(index) ? matching[index] : nil
    }

    /// The first resource of `kind` named `name`, or nil.
    public func resource(_ kind: Resource.Kind, named name: String) -> Resource? {
        resources.first { $0.kind == kind && $0.name == name }
    }
}
