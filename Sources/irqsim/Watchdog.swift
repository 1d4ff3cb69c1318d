import Foundation
import IRQEmu
import Synchronization

/// Reports stalls the way rcutorture does: an operation (a grace period, an unbind with
/// its free_irq calls) that does not finish within a bound is reported with the state of
/// every thread of the process (from /proc/self/task).
final class Watchdog: Sendable {
    private struct Operation {
        let what: String
        let thread: String
        let tid: Int32
        let start: UInt64
        var reported = false
    }

    private let bound: UInt64
    private let operations = Mutex<[Int: Operation]>([:])
    private let nextID = Atomic<Int>(0)
    private let stats: Stats
    private let stop = Atomic<Bool>(false)
    private let thread = Mutex<KThread?>(nil)

    /// How long an operation may run before it is reported as a stall.
    let boundSeconds: Double

    init(boundSeconds: Double, stats: Stats) {
        self.boundSeconds = boundSeconds
        bound = UInt64(boundSeconds * 1e9)
        self.stats = stats
    }

    func start() {
        let t = try! KThread(name: "watchdog") { [self] in
            while !stop.load(ordering: .relaxed) {
                usleep(100_000)
                check()
            }
        }
        thread.withLock { $0 = t }
    }

    func shutdown() {
        stop.store(true, ordering: .relaxed)
        try? thread.withLock { $0 }?.join()
    }

    /// Runs `body` as a watched operation.
    func watch<R>(_ what: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let name = KThread.currentName
        let tid = KThread.currentID
        operations.withLock { $0[id] = Operation(what: what(), thread: name, tid: tid, start: monotonicNanoseconds()) }
        defer { _ = operations.withLock { $0.removeValue(forKey: id) } }
        return try body()
    }

    private func check() {
        let now = monotonicNanoseconds()
        let stalled = operations.withLock { ops -> [Operation] in
            var found: [Operation] = []
            for (id, op) in ops where !op.reported && now > op.start && now - op.start > bound {
                ops[id]!.reported = true
                found.append(op)
            }
            return found
        }
        for op in stalled {
            stats.stalls.add(1, ordering: .relaxed)
            var lines = [
                "INFO: irqemu stall detected: \(op.what) on \(op.thread) (tid \(op.tid)) has not finished after \(String(format: "%.1f", Double(now - op.start) / 1e9)) s",
                "Task states (tid, name, state):",
            ]
            lines += Watchdog.taskStates()
            FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        }
    }

    /// Every thread of the process: tid, name and scheduler state (R running, S sleeping,
    /// D uninterruptible, …).
    static func taskStates() -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap(Int.init).sorted().compactMap { tid in
            guard let stat = try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let name = stat[stat.index(after: open)..<close]
            let state = stat[stat.index(close, offsetBy: 2)...].prefix(1)
            return "  \(tid) \(name) \(state)"
        }
    }
}
