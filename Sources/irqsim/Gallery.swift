import ArgumentParser
import Foundation
import IRQEmu

extension IRQSim {
    /// The gallery of buggy drivers: each known kernel bug runs in one loop (bind, an
    /// interrupt storm, two threads doing the driver's work, unbind, repeat) with faults off
    /// and on, until one of irqemu's detectors reports it; each correct twin must stay
    /// silent. Prints the detection table.
    struct Gallery: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the gallery of buggy drivers and their correct twins; print who caught what, and how fast.",
            discussion: """
                Each bug is caught on the first run that takes both of its paths, whether or \
                not they collide: the lock validator, the teardown-order check, the checker and \
                the leak check report what could happen. Faults (seeded) are needed where the \
                bug's path is an error path. Exit status 1 if a bug is not caught within \
                --limit (with faults where the table says they are needed) or a twin reports.
                """)

        @Option(help: "Seconds each bug may run before it counts as not caught.") var limit = 10.0
        @Option(help: "Seconds each correct twin runs.") var twinSeconds = 1.0
        @Option(help: "Runs of each twin (each with faults off and on).") var twinRuns = 1
        @Option(help: "The faults' seed for the faults-on runs.") var seed: UInt64 = 1
        @Option(help: "Run only the cases whose name contains this.") var only: String?
        @Flag(help: "Print the table as Markdown (for the README).") var markdown = false

        /// The faults of the faults-on runs.
        static let faultSpec = "gp=0.2:1ms,reader=0.002:0,primary=0.02:20us,threaded=0.1:100us,free=0.2:500us,"
            + "duplicate=0.05,spurious=0.01,unbind-irqs=1,devres-fail=0.3,request-fail=0.05,quarantine=20ms"

        func validate() throws {
            guard limit > 0, twinSeconds > 0, twinRuns >= 1 else { throw ValidationError("--limit, --twin-seconds and --twin-runs must be positive") }
        }

        mutating func run() throws {
            var faults = try Faults(parsing: Self.faultSpec)
            faults.seed = seed
            let cases = GalleryCases.all.filter { only == nil || $0.name.contains(only!) }
            var rows: [[String]] = []
            var failures: [String] = []
            for gallery in cases {
                progress("gallery: \(gallery.name)")
                let off = try GalleryLoop.run(gallery, buggy: true, faults: nil, limit: limit)
                let on = try GalleryLoop.run(gallery, buggy: true, faults: faults, limit: limit)
                let needed = gallery.needsFaults ? on : off
                if needed.detectedAfter == nil { failures.append("\(gallery.name): not caught within \(limit) s") }
                let first = (gallery.needsFaults ? on : off).headline ?? on.headline ?? "-"
                rows.append([
                    gallery.name, gallery.bug, needed.detector, Self.cell(off), Self.cell(on), first,
                ])
                for run in 0..<twinRuns {
                    for twinFaults in [nil, faults] {
                        let twin = try GalleryLoop.run(
                            gallery, buggy: false, faults: twinFaults, limit: twinSeconds, stopAtFirstReport: false)
                        if twin.reports > 0 {
                            failures.append("\(gallery.name) twin (run \(run + 1), faults \(twinFaults == nil ? "off" : "on")): \(twin.reports) report(s), first: \(twin.headline ?? "")")
                        }
                    }
                }
            }
            let header = ["bug", "what", "detector", "faults off", "faults on", "first line of the report"]
            print(markdown ? Self.markdownTable(header, rows) : Self.textTable(header, rows))
            print("twins: \(cases.count - Set(failures.filter { $0.contains("twin") }.map { $0.split(separator: " ")[0] }).count) of \(cases.count) silent, "
                + "\(twinRuns) run(s) of \(fmtSeconds(twinSeconds)) s each, with faults off and on; faults: \(faults)")
            for failure in failures { print("FAIL: \(failure)") }
            if !failures.isEmpty { throw ExitCode(1) }
        }

        static func cell(_ outcome: GalleryOutcome) -> String {
            guard let after = outcome.detectedAfter else { return "not caught (\(outcome.cycles) cycles)" }
            return "caught, \(String(format: "%.3f", after)) s"
        }

        static func markdownTable(_ header: [String], _ rows: [[String]]) -> String {
            var out = "| " + header.joined(separator: " | ") + " |\n"
            out += "|" + header.map { _ in " --- |" }.joined() + "\n"
            for row in rows { out += "| " + row.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
            return out
        }

        static func textTable(_ header: [String], _ rows: [[String]]) -> String {
            let all = [header] + rows
            let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
            return all.map { row in
                row.indices.map { i in row[i].padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  ")
            }.joined(separator: "\n")
        }
    }
}
