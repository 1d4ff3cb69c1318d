import KernelRuntime
import Synchronization

/// Delayed release (`Faults.quarantine`): a released Devres's value is kept alive for a
/// while before its deinit runs, so a use after release reads a value that is still whole
/// (and, if it poisons itself in its teardown, poisoned) rather than freed memory; the
/// release itself (a `ReleasableResource`'s teardown, free_irq for a registration) happens
/// on time. A late `Devres.access(_:)` is reported with where the value was released.
///
/// Values leave the quarantine on the quarantine's own thread, in process context.
enum Quarantine {
    /// Where and when a quarantined value was released.
    struct Release: Sendable {
        let thread: String
        let tid: Int32
        let at: UInt64
        let node: ObjectIdentifier
    }

    private struct Entry {
        let until: UInt64
        let value: any Sendable
        let release: Release
    }

    private struct State {
        var entries: [Entry] = []
        var thread: KThread?
        /// Entries added so far: the drain thread recomputes its deadline when it moves.
        var added: UInt64 = 0
    }

    private static let lock = ConditionLock()
    private static let state = LockedValue(State())

    /// The intake for `node`'s value if faults ask for a quarantine now, else nil (the value
    /// is dropped at once).
    static func intake<Value: Sendable>(for node: DevresNode) -> (@Sendable (consuming Value) -> Void)? {
        guard let duration = FaultInjection.current(fallback: node.device.faults).quarantine else { return nil }
        let release = Release(
            thread: KThread.currentName, tid: KThread.currentID, at: monotonicNanoseconds(), node: ObjectIdentifier(node))
        return { value in keep(value, for: duration, release: release) }
    }

    private static func keep(_ value: any Sendable, for duration: Duration, release: Release) {
        let until = monotonicNanoseconds() &+ duration.clampedNanoseconds
        lock.withLock {
            state.withLock { state in
                state.entries.append(Entry(until: until, value: value, release: release))
                state.added &+= 1
                if state.thread == nil {
                    state.thread = try? KThread(runtime: "irqemu-quarantine") { drain() }
                }
            }
        }
        lock.wakeAll()
    }

    /// How `node`'s value was released, if it is in the quarantine now.
    static func release(of node: DevresNode) -> Release? {
        let id = ObjectIdentifier(node)
        return state.withLock { $0.entries.last { $0.release.node == id }?.release }
    }

    /// Values in the quarantine now.
    static var count: Int { state.withLock { $0.entries.count } }

    private static func drain() {
        while true {
            var expired: [Entry] = []
            lock.withLock {
                while true {
                    let now = monotonicNanoseconds()
                    let (next, added) = state.withLock { state -> (UInt64?, UInt64) in
                        expired = state.entries.filter { $0.until <= now }
                        state.entries.removeAll { $0.until <= now }
                        return (state.entries.map(\.until).min(), state.added)
                    }
                    if !expired.isEmpty { return }
                    // Woken by an expiry, or by a new entry (whose deadline may be earlier
                    // than `next`, or the first: an empty quarantine waits without one).
                    _ = lock.waitLocked(until: next.map { Deadline(nanoseconds: $0) } ?? .never) {
                        state.withLock { state in
                            state.added != added || state.entries.contains { $0.until <= monotonicNanoseconds() }
                        }
                    }
                }
            }
            expired.removeAll()  // the values' deinits run here, outside the locks
        }
    }
}

/// A Devres value whose IRQ fault injection can raise (`Faults.interruptsDuringUnbind`):
/// the IRQ core's requested IRQ.
package protocol InterruptingResource: ReleasableResource {
    /// Raises the IRQ if it is still requested, and waits (briefly) for its handlers.
    func raiseAndWaitForHandlers()
}
