import Foundation
import KernelRuntime
import TestSupport
import Testing

/// KernelLog is a ring, as the kernel's log buffer is: it keeps the newest lines and
/// reports up to its capacities, counts what it dropped, and counts every report by kind
/// even when its text is gone. (Lines and reports appended from hard-IRQ handlers:
/// `HardIRQLogTests` in IRQCoreTests.)
@Suite(.timeLimit(.minutes(1)))
struct KernelLogTests {
    /// Records a `WARNING` report of `kind` with one headline line (the report adds its
    /// stack lines: 4 lines in all) to `log`.
    static func report(_ kind: KernelReport.Kind, _ headline: String, to log: KernelLog) {
        AtomicContext.warn(kind, [headline], function: "KernelLogTests", log: log, file: #fileID, line: #line)
    }

    /// The defaults are the stated ones (4,096 lines, 256 reports), for a new log and for
    /// `KernelLog.standard`. Old code: there was no capacity (the log grew without bound).
    @Test func defaultCapacitiesAreTheStatedOnes() {
        #expect(KernelLog.defaultCapacity == 4096)
        #expect(KernelLog.defaultReportCapacity == 256)
        let log = KernelLog(name: "defaults")
        #expect(log.capacity == 4096)
        #expect(log.reportCapacity == 256)
        #expect(KernelLog.standard.capacity == KernelLog.defaultCapacity)
        #expect(KernelLog.standard.reportCapacity == KernelLog.defaultReportCapacity)
        // A capacity below 1 is raised to 1: the ring always keeps the newest line.
        let tiny = KernelLog(name: "tiny", capacity: 0, reportCapacity: -5)
        #expect(tiny.capacity == 1 && tiny.reportCapacity == 1)
        tiny.printk("a")
        tiny.printk("b")
        #expect(tiny.messages == ["b"])
        #expect(tiny.droppedMessages == 1)
    }

    /// A log of capacity 3 given 10 lines keeps the newest 3, oldest first, and counts the
    /// 7 it dropped. Old code: it kept all 10 and had no drop count.
    @Test func smallCapacityKeepsTheNewestLinesAndCountsTheDropped() {
        let log = KernelLog(name: "ring", capacity: 3)
        for i in 0..<3 { log.printk("line \(i)") }
        #expect(log.messages == ["line 0", "line 1", "line 2"])
        #expect(log.droppedMessages == 0, "a full ring has dropped nothing yet")
        for i in 3..<10 { log.printk("line \(i)") }
        #expect(log.messages == ["line 7", "line 8", "line 9"])
        #expect(log.droppedMessages == 7)
        // Many wraps: still the newest three, in order.
        for i in 10..<1_000 { log.printk("line \(i)") }
        #expect(log.messages == ["line 997", "line 998", "line 999"])
        #expect(log.droppedMessages == 997)
    }

    /// Reports beyond `reportCapacity` lose their text (counted in `droppedReports`), but
    /// `reportCount` and `reportCount(kind)` count every one. Old code: every report was
    /// kept, with no capacity and no `droppedReports`.
    @Test func reportsBeyondTheCapacityDropTheirTextButStayCounted() {
        let log = KernelLog(name: "reports", capacity: 1_000, reportCapacity: 2)
        for i in 0..<5 { Self.report(.warning, "WARNING: number \(i)", to: log) }
        for i in 0..<3 { Self.report(.sleepInAtomic, "BUG: number \(i)", to: log) }
        Self.report(.violation, "violation: the last", to: log)
        #expect(log.reports.map(\.headline) == ["BUG: number 2", "violation: the last"], "the newest two, oldest first")
        #expect(log.droppedReports == 7)
        #expect(log.reportCount == 9)
        #expect(log.reportCount(.warning) == 5, "dropped warnings still counted")
        #expect(log.reportCount(.sleepInAtomic) == 3)
        #expect(log.reportCount(.violation) == 1)
        #expect(log.reports(.warning).isEmpty, "no warning's text is kept")
        #expect(log.reports(.sleepInAtomic).map(\.headline) == ["BUG: number 2"])
        // The reports' lines went to `messages` (4 per report), within its own capacity.
        #expect(log.messages.count == 9 * 4)
        #expect(log.droppedMessages == 0)
        #expect(log.messages.filter { $0.hasPrefix("WARNING: number ") }.count == 5, "lines kept although the reports were dropped")
    }

    /// A report's lines share the line ring with `printk`: a small line capacity drops the
    /// oldest report lines while the report itself is kept. Old code: no line capacity.
    @Test func reportLinesAreKeptInTheLineRing() {
        let log = KernelLog(name: "mixed", capacity: 5, reportCapacity: 10)
        log.printk("first")
        Self.report(.warning, "WARNING: one", to: log)  // 4 lines
        log.printk("last")
        #expect(log.messages.count == 5)
        #expect(log.messages.first == "WARNING: one")
        #expect(log.messages.last == "last")
        #expect(log.droppedMessages == 1, "\"first\" was dropped")
        #expect(log.reports.map(\.headline) == ["WARNING: one"])
        #expect(log.droppedReports == 0)
    }

    /// `clear()` forgets lines and reports and resets every count; the capacities still
    /// apply afterwards. Old code: no counts to reset (and no capacity).
    @Test func clearResetsTheCounts() {
        let log = KernelLog(name: "clear", capacity: 3, reportCapacity: 1)
        for i in 0..<10 { log.printk("line \(i)") }
        Self.report(.warning, "WARNING: a", to: log)
        Self.report(.sleepInAtomic, "BUG: b", to: log)
        #expect(log.droppedMessages > 0 && log.droppedReports == 1 && log.reportCount == 2)
        log.clear()
        #expect(log.messages.isEmpty)
        #expect(log.reports.isEmpty)
        #expect(log.droppedMessages == 0)
        #expect(log.droppedReports == 0)
        #expect(log.reportCount == 0)
        #expect(log.reportCount(.warning) == 0)
        #expect(log.reportCount(.sleepInAtomic) == 0)
        for i in 0..<5 { log.printk("again \(i)") }
        #expect(log.messages == ["again 2", "again 3", "again 4"])
        #expect(log.droppedMessages == 2)
        Self.report(.violation, "x", to: log)
        Self.report(.violation, "y", to: log)
        #expect(log.reports.map(\.headline) == ["y"])
        #expect(log.droppedReports == 1)
        #expect(log.reportCount(.violation) == 2)
    }

    /// Four threads append 2,000 lines each to a ring of 100 at the same time: exactly the
    /// surplus is counted as dropped, and each thread's kept lines are in its own order.
    /// Old code: no ring (all 8,000 lines kept).
    @Test func concurrentAppendsCountEveryDrop() {
        let log = KernelLog(name: "parallel", capacity: 100)
        let perThread = 2_000
        Threads.run(4, name: "printk") { index in
            for i in 0..<perThread { log.printk("\(index) \(i)") }
        }
        let kept = log.messages
        #expect(kept.count == 100)
        #expect(log.droppedMessages == 4 * perThread - 100)
        for thread in 0..<4 {
            let numbers = kept.compactMap { line -> Int? in
                let parts = line.split(separator: " ")
                return parts.count == 2 && parts[0] == "\(thread)" ? Int(parts[1]) : nil
            }
            #expect(numbers == numbers.sorted(), "thread \(thread)'s lines kept in order")
        }
    }
}
