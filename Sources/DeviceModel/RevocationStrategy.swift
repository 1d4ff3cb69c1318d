/// How a `Revocable` (and so a `Devres`) keeps readers off a value it revokes.
public enum RevocationStrategy: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// An atomic flag read inside an RCU read-side section; revoking flips the flag, waits
    /// one grace period, then drops the value (rust/kernel/revocable.rs). Reads cost a few
    /// nanoseconds and scale across cores, never block, and work in hard-IRQ context;
    /// revoking waits a grace period.
    case rcu
    /// A mutex (Alice Ryhl's proposal in the request_irq thread): readers lock, check, use,
    /// unlock; revoking locks, clears, unlocks, with no grace period. Reads take a lock and
    /// may sleep, so hard-IRQ code cannot use them (the checker refuses them).
    case mutex

    /// `rcu` or `mutex`.
    public var description: String { rawValue }
}
