import Foundation
import IRQEmu
import TestSupport
import Testing

/// irqsim, run as a child process (not inside the test runner): short torture runs of each
/// strategy — the broken one must fail — and the demo machine with its signal line raised
/// from this process. Skipped under TSan, where the broken variant's deliberate race would
/// be reported.
@Suite(.serialized, .enabled(if: !Scale.isTSan, "the broken strategy races on purpose"), .timeLimit(.minutes(3)))
struct SimulatorTests {
    static var irqsim: String { ChildProcess.packageExecutable("irqsim") }

    /// Runs irqsim with stdout in a temporary file; returns (exit status, stdout, seconds).
    static func irqsimRun(_ arguments: [String], timeout: Duration, whileRunning: (@Sendable (String) -> Void)? = nil) throws -> (Int32?, String, Double) {
        let path = NSTemporaryDirectory() + "irqsim-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).out"
        let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
        let devnull = open("/dev/null", O_WRONLY)
        defer {
            close(fd)
            close(devnull)
            unlink(path)
        }
        let start = Date()
        let status = try onThread(timeout: timeout + .seconds(30)) { () -> Int32? in
            let child = try ChildProcess(path: irqsim, arguments: arguments, fds: [(fd, 1), (devnull, 2)])
            whileRunning?(path)
            return try? child.wait(timeout: timeout)
        }
        let output = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return (status, output, Date().timeIntervalSince(start))
    }

    @Test(arguments: ["rcu", "mutex"])
    func tortureOfACorrectStrategyPasses(strategy: String) throws {
        let (status, output, _) = try Self.irqsimRun(
            ["torture", "--seconds", "3", "--readers", "2", "--strategy", strategy], timeout: .seconds(60))
        #expect(status == 0, "\(output)")
        let summary = output.split(separator: "\n").first { $0.hasPrefix("irqsim torture:") } ?? ""
        #expect(summary.hasSuffix("violations 0, stalls 0: PASS"))
        #expect(!summary.contains("reads 0,"), "the readers read")
        #expect(!summary.contains("interrupts 0,"), "interrupts were handled")
        #expect(summary.contains("work items ") && !summary.contains("work items 0,"), "the bottom halves ran")
    }

    /// The bottom half cancelled with a non-sync cancel in the driver's remove, its data
    /// released there while the IRQs can still queue it: caught, as a work item that ran
    /// after its data was released, with a non-zero exit status.
    @Test func tortureOfTheNonSyncCancelFails() throws {
        let (status, output, seconds) = try Self.irqsimRun(
            ["torture", "--seconds", "10", "--readers", "2", "--strategy", "broken-cancel"], timeout: .seconds(40))
        #expect(status == 1, "\(output)")
        let lines = output.split(separator: "\n")
        let summary = lines.first { $0.hasPrefix("irqsim torture:") } ?? ""
        #expect(summary.hasSuffix(": FAIL"), "\(output)")
        #expect(seconds < 15, "caught early")
        let kinds = lines.filter { $0.hasPrefix("  ") && $0.contains(", first at ") }
            .map { String($0.dropFirst(2).prefix { $0 != ":" }) }
        #expect(kinds == ["work item data"], "only the bottom half's data was used after release: \(output)")
    }

    /// The proof that the torture test can fail: the correct teardown without its waits (no
    /// grace period before a Devres is released, handler data released before free_irq's
    /// wait) is caught, with a non-zero exit status, within 10 s. Only a reader or handler
    /// racing a release can see it, so every violation must be of those kinds, and the
    /// readers must have caught the missing grace period.
    @Test func tortureOfTheBrokenStrategyFailsWithinTenSeconds() throws {
        let (status, output, seconds) = try Self.irqsimRun(
            ["torture", "--seconds", "10", "--readers", "2", "--strategy", "broken"], timeout: .seconds(40))
        #expect(status == 1, "\(output)")
        let lines = output.split(separator: "\n")
        let summary = lines.first { $0.hasPrefix("irqsim torture:") } ?? ""
        #expect(summary.hasSuffix(": FAIL"), "\(output)")
        #expect(!summary.contains("violations 0,"), "\(output)")
        #expect(summary.contains("stalls 0:"), "\(output)")
        #expect(seconds < 15, "caught early (the run stops at the first report after a violation)")
        // One line per kind: "  <what>: <count>, first at <s> s (generation <n>)".
        let kinds = lines.filter { $0.hasPrefix("  ") && $0.contains(", first at ") }
            .map { String($0.dropFirst(2).prefix { $0 != ":" }) }
        // A work item reads the device's Devres through tryAccess: a reader too.
        let races: Set = [
            "reader", "work item Devres read", "hard-IRQ handler data", "primary handler data", "threaded handler data",
        ]
        #expect(!kinds.isEmpty, "\(output)")
        #expect(kinds.allSatisfy(races.contains), "a violation no race explains: \(output)")
        #expect(kinds.contains("reader"), "the readers caught the missing grace period: \(output)")
    }

    /// The gallery: every known bug is caught within 10 s (with faults where its table row
    /// says they are needed) by the detector its row names, and every correct twin stays
    /// silent across 3 runs, with faults off and on.
    @Test func theGalleryCatchesEveryBugAndNoTwin() throws {
        let (status, output, _) = try Self.irqsimRun(
            ["gallery", "--limit", "10", "--twin-runs", "3", "--twin-seconds", "0.3"], timeout: .seconds(240))
        #expect(status == 0, "\(output)")
        #expect(!output.contains("FAIL:"), "\(output)")
        let rows = output.split(separator: "\n").filter { $0.contains("caught") }
        #expect(rows.count == 14, "\(output)")
        // The one bug on an error path is caught only with faults: its row says so.
        #expect(rows.contains { $0.hasPrefix("enomem-leak") && $0.contains("leak check") && $0.contains("not caught") })
        #expect(output.contains("twins: 14 of 14 silent, 3 run(s)"), "\(output)")
        // The bottom-half bugs, each by its detector.
        for (name, detector) in [
            ("flush-under-lock", "lock validator"), ("handler-before-work", "checker (warning)"), ("nonsync-cancel", "non-sync cancel check"),
        ] {
            #expect(rows.contains { $0.hasPrefix(name) && $0.contains(detector) }, "\(name): \(output)")
        }
    }

    /// The demo machine: a table every second with non-zero counts on every line, the
    /// signal line raised from this process (another process, for irqsim).
    @Test func runShowsEveryLineBusyIncludingTheSignalRaisedFromAnotherProcess() throws {
        let (status, output, _) = try Self.irqsimRun(["run", "--seconds", "4"], timeout: .seconds(40)) { path in
            // Wait for the line that names the command, then raise the signal line from here.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                if let line = text.split(separator: "\n").first(where: { $0.contains("kill -s RTMIN+") }) {
                    let words = line.split(separator: " ")
                    let pid = Int32(words.last!)!
                    let offset = Int32(words[words.count - 2].dropFirst("RTMIN+".count))!
                    for _ in 0..<5 {
                        kill(pid, SignalAllocator.range.lowerBound + offset)
                        usleep(50_000)
                    }
                    return
                }
                usleep(20_000)
            }
        }
        #expect(status == 0, "\(output)")
        let finalTable = output.components(separatedBy: "final /proc/interrupts:").last ?? ""
        let rows = finalTable.split(separator: "\n").filter { $0.contains(":") && $0.contains("-edge") || $0.contains("-level") }
        #expect(rows.count == 4, "\(finalTable)")
        for row in rows {
            let counts = row.split(separator: ":", maxSplits: 1)[1].split(separator: " ").prefix(2).compactMap { UInt64($0) }
            #expect(counts.reduce(0, +) > 0, "a line with no interrupts: \(row)\n\(output)")
        }
        #expect(rows.contains { $0.hasSuffix("ttyS0") })
        // The Devres data (rcu: every handler counts events): "eth0 960 events 2,780 reads; …".
        let devres = output.split(separator: "\n").first { $0.hasPrefix("Devres data") }?
            .split(separator: ": ", maxSplits: 1).last?.split(separator: "; ") ?? []
        #expect(devres.count == 5, "\(output)")
        for entry in devres {
            let words = entry.split(separator: " ")
            #expect(words.count == 5 && words[2] == "events" && words[4] == "reads", "\(entry)")
            let counts = [words[1], words[3]].compactMap { UInt64($0.filter(\.isNumber)) }
            #expect(counts.count == 2 && counts.allSatisfy { $0 > 0 }, "Devres data not used: \(entry)\n\(output)")
        }
        #expect(output.contains("checker reports: 0"))
        // The NICs' bottom halves ran, and unbind left them disabled; the workqueue view.
        let bottom = output.split(separator: "\n").first { $0.hasPrefix("bottom halves (nic_rx):") } ?? ""
        #expect(!bottom.contains(" 0 packets"), "\(output)")
        #expect(bottom.hasSuffix("after unbind: eth0 disabled, eth1 disabled"), "\(output)")
        let view = output.split(separator: "\n").filter { $0.hasPrefix("  nic_rx ") }
        #expect(!view.isEmpty, "a workqueue view every second: \(output)")
        #expect(view.last.map { !$0.split(separator: " ").contains("0") || $0.split(separator: " ")[1] != "0" } == true)
    }
}
