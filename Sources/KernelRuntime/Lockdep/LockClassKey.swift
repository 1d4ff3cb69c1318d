/// A lock class the user names (the kernel's `struct lock_class_key`): every lock created
/// with the same key is one class to the lock validator, wherever it was created.
///
/// The name is the identity: two keys with one name are one class. A lock created without
/// a key takes the class of its creation site (`#fileID:#line`), so every lock made by one
/// line of code is one class, as `spin_lock_init` declares one static key per call site.
public struct LockClassKey: Hashable, Sendable, CustomStringConvertible {
    /// The class's name in reports, e.g. `&dev->lock`.
    public let name: String

    /// The class named `name`.
    public init(_ name: String) { self.name = name }

    /// The name.
    public var description: String { name }
}
