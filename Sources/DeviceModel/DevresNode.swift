import Glibc
import KernelRuntime
import RCU
import Synchronization

/// An entry on a device's resource list (the kernel's `struct devres_node`): a Devres'
/// inner part, or a release action.
///
/// Who releases it is decided by `claim`, separate from a Devres' readers' flag: exactly one
/// of the unbinding thread and the thread dropping the Devres claims it and drops the
/// resource; the other waits until that drop has finished. A thread that finds the drop
/// in progress on itself (a value whose teardown drops its own Devres) does not wait.
package class DevresNode: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `next`, `prev` and `onList` are only touched with
    // `device.lock` held; the rest are atomics or immutable.
    package let device: Device
    var next: DevresNode?
    unowned var prev: DevresNode?
    var onList = false

    /// Who releases the resource, and how far that went.
    enum Claim: UInt8 {
        /// Nobody yet: on the list, or taken by an unbind that has not reached it.
        case unclaimed = 0
        /// A thread claimed it and is dropping it.
        case dropping = 1
        /// Dropped (or, for an action, cancelled): waiters may go.
        case dropped = 2
    }

    private let claimState = Atomic<UInt8>(Claim.unclaimed.rawValue)
    private var claim: Claim { unsafe Claim(rawValue: claimState.load(ordering: .sequentiallyConsistent)).unsafelyUnwrapped }
    /// The thread dropping it (valid once the claim is `.dropping`).
    private let dropper = Atomic<Int32>(0)
    /// Whether the claimed release was handed to the reaper (claimed inside its own access).
    private let deferredToReaper = Atomic<Bool>(false)
    /// Threads inside `Devres.access(_:)`, which reads without RCU on proof of boundness.
    package let accessors = Atomic<Int>(0)
    /// The node's registration number on its device (1, 2, …, in the order registered; 0
    /// until it is on the list): unbind releases higher numbers first.
    package let sequence = Atomic<UInt64>(0)

    init(device: Device) { self.device = device }

    // MARK: - What subclasses provide

    /// Names the resource in reports (`Devres<Int>`, `action "free-buffers"`).
    package var resourceName: String { "resource" }
    /// Whether releasing it needs a grace period (an RCU Devres).
    package var needsGracePeriod: Bool { false }
    /// Stage 1 of a release: stops new readers. Returns whether this call did it.
    package func unpublish() -> Bool { false }
    /// The release itself: drops the value, or runs the action.
    package func dropResource() {}

    // MARK: - The claim

    /// Whether the resource has been claimed for release (it is being, or has been, dropped).
    package var isClaimed: Bool { claim != .unclaimed }

    /// The node's mark on a thread's list of held locks while the thread is inside
    /// `Devres.access(_:)` of it.
    package final var accessMark: UnsafeMutableRawPointer { unsafe Unmanaged.passUnretained(self).toOpaque() }

    /// Whether the calling thread is inside `Devres.access(_:)` of this node.
    private var isAccessedOnCurrentThread: Bool {
        guard ThreadState.holdsLocks else { return false }
        return unsafe ThreadState.holdsLock(accessMark)
    }

    /// Claims the release and performs it. Returns false, doing nothing, if another thread
    /// claimed it first.
    ///
    /// Claimed from inside its own `access(_:)` (a threaded handler that unbinds its device
    /// there), the release would wait for the calling thread: it is reported, and the
    /// reaper drops the resource once the access has ended.
    @discardableResult
    package final func claimAndDrop() -> Bool {
        guard claimState.compareExchange(
            expected: Claim.unclaimed.rawValue, desired: Claim.dropping.rawValue, ordering: .sequentiallyConsistent
        ).exchanged else {
            return false
        }
        dropper.store(ThreadState.tid, ordering: .relaxed)
        if accessors.load(ordering: .sequentiallyConsistent) != 0 && isAccessedOnCurrentThread {
            AtomicContext.warn(
                .warning,
                ["WARNING: \(resourceName) of device \(device.name) released inside its own access(_:) would wait for itself; deferred"],
                function: "\(resourceName) release", log: device.log, file: #fileID, line: #line)
            deferredToReaper.store(true, ordering: .relaxed)
            Reaper.shared.schedule("drop \(resourceName) of \(device.name)") { self.waitForAccessorsAndDrop() }
            return true
        }
        waitForAccessorsAndDrop()
        return true
    }

    /// The claimed release: waits for bound accessors, drops, marks it dropped and wakes
    /// waiters.
    private func waitForAccessorsAndDrop() {
        // Bound accessors that got in before the claim finish first; later ones see it.
        var spins = 0
        while accessors.load(ordering: .sequentiallyConsistent) != 0 {
            spins += 1
            if spins < 64 { sched_yield() } else { usleep(50) }
        }
        dropResource()
        claimState.store(Claim.dropped.rawValue, ordering: .sequentiallyConsistent)
        // Wake waiters only if there are any (they count themselves before checking the claim).
        if device.dropWaiters.load(ordering: .sequentiallyConsistent) > 0 {
            device.lock.withLock {}
            device.lock.wakeAll()
        }
    }

    /// Marks a node just unlinked by a cancel as finished without dropping it. Called with
    /// the device lock held, so a waiter that checks `claim` under it cannot miss the wake.
    package final func markCancelledLocked() {
        claimState.store(Claim.dropped.rawValue, ordering: .sequentiallyConsistent)
    }

    /// Waits until the thread that claimed the release has finished it. Returns at once if
    /// it is done; if that thread is the calling one (the drop is in progress further up
    /// this thread's stack, or, reported, handed to the reaper, which may be waiting for this
    /// thread); or if nobody claimed it yet and the device's release runs on the calling
    /// thread (it will release it later, newest first).
    package final func waitUntilDropped() {
        let state = claim
        if state == .dropped { return }
        let tid = ThreadState.tid
        if dropper.load(ordering: .relaxed) == tid {
            if deferredToReaper.load(ordering: .relaxed) {
                // The reaper may be waiting for this thread (stopping it, as a deferred
                // free_irq does): waiting for the reaper here could deadlock.
                AtomicContext.warn(
                    .warning,
                    ["WARNING: \(resourceName) of device \(device.name) dropped while its release, handed to the reaper, has not finished; not waiting for it on the thread that handed it over"],
                    function: "\(resourceName) drop", log: device.log, file: #fileID, line: #line)
            }
            return
        }
        if state == .unclaimed && device.isReleasing(on: tid) { return }
        device.lock.withLock {
            device.dropWaiters.add(1, ordering: .sequentiallyConsistent)
            _ = device.lock.waitLocked { claim == .dropped }
            device.dropWaiters.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    /// Releases it, or waits for whoever is releasing it.
    package final func releaseOrWait() {
        if !claimAndDrop() { waitUntilDropped() }
    }
}

/// The part of a `Devres` the device's list holds: the Revocable and the claim.
final class DevresInner<Value: Sendable>: DevresNode, @unchecked Sendable {
    let revocable: Revocable<Value>

    /// Whether the value has a teardown of its own (`ReleasableResource`), decided once.
    private let isResource: Bool

    init(device: Device, value: consuming Value, strategy: RevocationStrategy) {
        isResource = Value.self is any ReleasableResource.Type
        revocable = Revocable(value, strategy: strategy)
        super.init(device: device)
    }

    override var resourceName: String { "Devres<\(Value.self)>" }
    override var needsGracePeriod: Bool { revocable.strategy == .rcu }
    override func unpublish() -> Bool { revocable.strategy == .rcu ? revocable.unpublish() : false }

    override func dropResource() {
        switch revocable.strategy {
        case .rcu:
            if !revocable.isRevoked { _ = revocable.unpublish() }
            if isResource && !revocable.isDropped {
                revocable.unsafeBorrow { ($0 as? any ReleasableResource)?.releaseResource() }
            }
            revocable.dropValue()
        case .mutex:
            let isResource = self.isResource
            let revocable = self.revocable
            let revoke = { @Sendable in
                revocable.mutexRevoke { if isResource { ($0 as? any ReleasableResource)?.releaseResource() } }
            }
            // Unbind (or the drop) from inside this value's own access: its lock is held
            // further up this thread's stack. Report it and let the reaper revoke once the
            // access ends, rather than deadlock.
            if revocable.recursiveLockReported("Devres<\(Value.self)> release [mutex]", log: device.log, file: #fileID, line: #line) != nil {
                Reaper.shared.schedule("revoke Devres<\(Value.self)> of \(device.name)") { _ = revoke() }
                return
            }
            _ = revoke()
        }
    }
}

/// A release action on the device's list (`devm_add_action`).
final class ActionNode: DevresNode, @unchecked Sendable {
    let name: String
    let action: @Sendable () -> Void

    init(device: Device, name: String, action: @escaping @Sendable () -> Void) {
        self.name = name
        self.action = action
        super.init(device: device)
    }

    override var resourceName: String { "action \"\(name)\"" }
    override func dropResource() { action() }
}
