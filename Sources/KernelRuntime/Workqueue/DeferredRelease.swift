/// Gives back, on a worker (process context), queue references that were taken back in
/// atomic context. Queued, when needed, on the queue of the item it releases, with no check
/// of that queue's state (it is the subsystem's own housekeeping).
final class DeferredRelease: WorkItem {
    let work = Work(name: "irqemu_deferred_release")

    func run() {
        let core = WorkqueueCore.shared
        let releases = core.lock.withLock { core.takeDeferredReleasesLocked() }
        // Each is a queue reference that a cancel in atomic context took back and left to us.
        for (owner, count) in releases {
            for _ in 0..<count { owner.release() }
        }
    }
}
