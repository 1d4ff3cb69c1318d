import Foundation
import Synchronization

/// A payload that counts its deinits and poisons itself on release, so tests can check
/// "dropped exactly once" and "never read after release".
public final class Counted: Sendable {
    /// Live instances created by `counter`.
    public final class Counter: Sendable {
        public let created = Atomic<Int>(0)
        public let dropped = Atomic<Int>(0)
        public init() {}
        public var live: Int { created.load(ordering: .relaxed) - dropped.load(ordering: .relaxed) }
        public var createdCount: Int { created.load(ordering: .relaxed) }
        public var droppedCount: Int { dropped.load(ordering: .relaxed) }
    }

    public static let alive: UInt64 = 0xA11C_E0A1_1CE0_A11C
    public static let poison: UInt64 = 0xDEAD_DEAD_DEAD_DEAD

    public let id: Int
    public let counter: Counter
    private let state = Atomic<UInt64>(Counted.alive)
    private let onDrop: (@Sendable (Int) -> Void)?

    public init(_ id: Int = 0, counter: Counter, onDrop: (@Sendable (Int) -> Void)? = nil) {
        self.id = id
        self.counter = counter
        self.onDrop = onDrop
        counter.created.add(1, ordering: .relaxed)
    }

    /// Whether the object is still alive (not poisoned by its deinit).
    public var isAlive: Bool { state.load(ordering: .acquiring) == Counted.alive }

    deinit {
        let previous = state.exchange(Counted.poison, ordering: .acquiringAndReleasing)
        precondition(previous == Counted.alive, "Counted \(id) dropped twice")
        onDrop?(id)
        counter.dropped.add(1, ordering: .relaxed)
    }
}
