import Foundation
import KernelRuntime

/// A task executor like Swift's cooperative pool, for one test: `width` threads that run
/// jobs in order and never start another when one blocks. A test that runs its tasks here
/// (`withTaskExecutorPreference`) knows how many threads they have, and shares them with
/// no other test (the global pool's threads are also where other suites' synchronous tests
/// block).
public final class FixedPool: TaskExecutor, @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `jobs` and `stopping` are only touched with `condition`
    // locked; `threads` is written in init, before the pool is shared, and read in `stop()`.
    public let width: Int
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false
    private var threads: [KThread] = []

    /// Starts `width` threads named `name/N`.
    public init(width: Int, name: String = "test-pool") throws {
        self.width = width
        for i in 0..<width {
            threads.append(try KThread(name: "\(name)/\(i)") { [unowned self] in run() })
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }

    /// Lets the threads finish the queued jobs and exit, and joins them (from a thread).
    public func stop() throws {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        for thread in threads { try thread.join(timeout: .seconds(30)) }
    }
}
