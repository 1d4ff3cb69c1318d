import CSupport
import Glibc
import SystemPackage

/// A pool of kworker threads sharing one worklist (the kernel's `struct worker_pool`): one
/// per emulated CPU and priority, plus an unbound pool per priority. Queues share pools.
///
/// Concurrency management is not emulated. The kernel keeps about one runnable worker per
/// pool, waking or creating another when the running one sleeps; here a pool has a fixed
/// number of workers, all started with it (so no enqueue ever creates a thread), and each
/// takes items while there are any, whether the others sleep or not. If every worker of a
/// pool sleeps, the pool's other items wait (the kernel would start another worker).
///
/// Pools live as long as the process.
@safe
final class WorkerPool: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `workers` is written only by `start`, before the pool is
    // published; the rest is guarded by `WorkqueueCore.lock`.
    /// The kernel's pool id: per-CPU pools are `2 × cpu` (+1 high priority), the unbound
    /// ones follow them.
    let id: Int
    /// The CPU of a per-CPU pool; nil for an unbound pool.
    let cpu: Int?
    let highPri: Bool
    /// Active items waiting for a worker.
    let worklist = WorkList(holdsActive: true)
    /// Idle workers, a stack linked through `Worker.nextIdle`, unretained (SAFETY: workers
    /// are never freed).
    private var firstIdle: Unmanaged<Worker>?
    private(set) var workers: [Worker] = []

    init(id: Int, cpu: Int?, highPri: Bool) {
        self.id = id
        self.cpu = cpu
        self.highPri = highPri
    }

    /// The kernel's name for worker `index`: `kworker/C:N`, `kworker/C:NH`, `kworker/uP:N`.
    func workerName(_ index: Int) -> String {
        if let cpu { return "kworker/\(cpu):\(index)\(highPri ? "H" : "")" }
        return "kworker/u\(id):\(index)"
    }

    /// Starts `workers` threads; each is idle in its loop when this returns. On failure the
    /// ones started are stopped and joined.
    func start(workers count: Int, hostCPU: Int?) throws(Errno) {
        for index in 0..<count {
            let worker = Worker(pool: self, id: index, name: workerName(index))
            do throws(Errno) {
                try worker.start(hostCPU: hostCPU)
            } catch {
                for started in workers { started.stop() }
                workers.removeAll()
                throw error
            }
            workers.append(worker)
        }
    }

    /// Pops an idle worker and marks it woken; the caller signals its condition after
    /// dropping the lock. Nil if every worker is busy (they look at the worklist before they
    /// sleep). Lock held.
    @inline(__always)
    func popIdleLocked() -> WakeUp {
        guard let worker = unsafe firstIdle else { return .none }
        unsafe worker._withUnsafeGuaranteedRef { worker in
            unsafe firstIdle = worker.nextIdle
            unsafe worker.nextIdle = nil
            worker.isIdle = false
            worker.woken = true
        }
        return unsafe WakeUp(worker)
    }

    /// Pushes `worker` on the idle stack. Lock held.
    func pushIdleLocked(_ worker: Worker) {
        worker.isIdle = true
        worker.woken = false
        unsafe worker.nextIdle = firstIdle
        unsafe firstIdle = Unmanaged.passUnretained(worker)
    }

    /// Takes `worker` off the idle stack, wherever it is (a pool whose start failed). Lock held.
    func removeIdleLocked(_ worker: Worker) {
        guard worker.isIdle else { return }
        var remaining: [Worker] = []
        while let top = unsafe firstIdle?.takeUnretainedValue() {
            unsafe firstIdle = top.nextIdle
            unsafe top.nextIdle = nil
            if top !== worker { remaining.append(top) }
        }
        for other in remaining.reversed() { pushIdleLocked(other) }
        worker.isIdle = false
    }
}
