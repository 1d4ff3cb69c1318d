import Synchronization

/// What the lock validator knows of one lock (the kernel's `struct lockdep_map`): how its
/// class is found, the lock's type, and a cache of its class.
///
/// Every validated lock owns one; the map's address is the lock instance in reports. A wait
/// modelled as an acquisition (free_irq against the line's threaded handlers, an unbind
/// against `withBound` bodies, `Reaper.flush`) uses a bare map: a pseudo-lock.
///
/// - Complexity: One allocation when the lock is created. The first acquisition looks the
///   class up (a dictionary, under the validator's lock); later ones read it from the map
///   (one atomic load).
public final class LockdepMap: Sendable {
    /// The lock's type, printed as the kernel's wait-context pair `{outer:inner}`.
    public enum LockType: Sendable, Hashable {
        /// A `SpinLock` (`spinlock_t`, `{3:3}`).
        case spinlock
        /// A sleeping lock: `SleepingMutex`, a Revocable's mutex (`struct mutex`, `{4:4}`).
        case mutex
        /// A pseudo-lock standing for a wait (a `lockdep_map` of its own, `{0:0}`).
        case pseudo

        var waitContext: String {
            switch self {
            case .spinlock: "{3:3}"
            case .mutex: "{4:4}"
            case .pseudo: "{0:0}"
            }
        }
    }

    enum Identity: Sendable {
        /// The creation site: `kind@file:line`.
        case site(kind: StaticString, file: StaticString, line: UInt)
        case key(LockClassKey)
    }

    let identity: Identity
    /// The class's name in reports, if not `className` (a workqueue's `(wq_completion)NAME`):
    /// the first map of a class names it.
    let label: String?
    /// The lock's type.
    public let type: LockType
    /// The class of subclass 0 and 1: `generation << 32 | (index + 1)`, 0 until looked up.
    let cache0 = Atomic<UInt64>(0)
    let cache1 = Atomic<UInt64>(0)

    /// A map whose class is its creation site, named `kind@file:line`.
    public init(kind: StaticString, type: LockType, file: StaticString = #fileID, line: UInt = #line) {
        identity = .site(kind: kind, file: file, line: line)
        self.type = type
        label = nil
    }

    /// A map whose class is `key`, wherever it is created.
    public init(key: LockClassKey, type: LockType = .pseudo) {
        identity = .key(key)
        self.type = type
        label = nil
    }

    /// A map of class `key` if given, else of its creation site, named `label` in reports.
    package init(kind: StaticString, key: LockClassKey?, label: String, type: LockType, file: StaticString, line: UInt) {
        identity = key.map { .key($0) } ?? .site(kind: kind, file: file, line: line)
        self.type = type
        self.label = label
    }

    /// The one map of every lock of `kind` created at `file:line`, made on first use: locks
    /// that are many and small (a Revocable's mutex) share their site's map and name
    /// themselves to the validator by their own address. One dictionary lookup.
    /// `label`, if given, names the class in reports (the first lock of the site names it).
    package static func shared(
        kind: StaticString, type: LockType, file: StaticString, line: UInt, label: @autoclosure () -> String? = nil
    ) -> LockdepMap {
        let key = SiteKey(kind: kind.description, file: file.description, line: line)
        return sharedMaps.withLock { maps in
            if let map = maps[key] { return map }
            let map = label().map { LockdepMap(kind: kind, key: nil, label: $0, type: type, file: file, line: line) }
                ?? LockdepMap(kind: kind, type: type, file: file, line: line)
            maps[key] = map
            return map
        }
    }

    private struct SiteKey: Hashable {
        let kind: String
        let file: String
        let line: UInt
    }

    private static let sharedMaps = LockedValue<[SiteKey: LockdepMap]>([:])

    /// A map of class `key` if given, else of its creation site.
    public convenience init(kind: StaticString, key: LockClassKey?, type: LockType, file: StaticString, line: UInt) {
        if let key { self.init(key: key, type: type) } else { self.init(kind: kind, type: type, file: file, line: line) }
    }

    /// The class's name in reports (without a subclass): the label of the class's first
    /// map if it has one, else `className`.
    public var name: String { label ?? className }

    /// The class's identity (without a subclass): the key's name, or `kind@file:line`.
    public var className: String {
        switch identity {
        case .site(let kind, let file, let line): "\(kind)@\(file):\(line)"
        case .key(let key): key.name
        }
    }

    /// The map's address: the lock instance in reports, and how held locks are matched.
    @inline(__always)
    var instance: UnsafeRawPointer { unsafe UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()) }

    /// `instance` as a number.
    @inline(__always)
    var instanceBits: UInt { UInt(bitPattern: ObjectIdentifier(self)) }

    /// The cached class of `subclass` for `generation`, if any.
    @inline(__always)
    func cachedClass(_ subclass: Int, generation: UInt32) -> UInt32? {
        let word: UInt64
        switch subclass {
        case 0: word = cache0.load(ordering: .relaxed)
        case 1: word = cache1.load(ordering: .relaxed)
        default: return nil
        }
        guard UInt32(truncatingIfNeeded: word >> 32) == generation, UInt32(truncatingIfNeeded: word) != 0 else { return nil }
        return UInt32(truncatingIfNeeded: word) - 1
    }

    func cache(_ index: UInt32, subclass: Int, generation: UInt32) {
        let word = UInt64(generation) << 32 | UInt64(index + 1)
        switch subclass {
        case 0: cache0.store(word, ordering: .relaxed)
        case 1: cache1.store(word, ordering: .relaxed)
        default: break
        }
    }
}

extension LockdepMap: CustomStringConvertible {
    /// `LockdepMap(class name)`.
    public var description: String { "LockdepMap(\(className))" }
}
