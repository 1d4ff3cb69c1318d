/// A queue's share of a pool (the kernel's `pool_workqueue`): how many of the queue's items
/// are active on the pool, and the ones waiting for room (`maxActive`).
@safe
final class PoolQueue: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `nrActive` and `inactive` are guarded by
    // `WorkqueueCore.lock`; the rest is immutable. `queue` owns this object, so it outlives
    // every use of this unretained back reference.
    let queueRef: Unmanaged<Workqueue>
    /// The queue, which owns this object.
    var queue: Workqueue { unsafe queueRef.takeUnretainedValue() }
    let pool: WorkerPool
    let maxActive: Int
    /// Items active on the pool: on its worklist, on a worker's scheduled list, or running.
    var nrActive = 0
    /// Items over `maxActive`, activated first in, first out.
    let inactive = WorkList(holdsActive: false)

    init(queue: Workqueue, pool: WorkerPool, maxActive: Int) {
        unsafe queueRef = Unmanaged.passUnretained(queue)
        self.pool = pool
        self.maxActive = maxActive
    }
}
