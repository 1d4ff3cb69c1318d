import Foundation
import Histogram

/// The median, min and max of a figure over the repetitions of a benchmark.
struct Spread: Codable, Sendable {
    let median: Double
    let min: Double
    let max: Double

    init(_ samples: [Double]) {
        let sorted = samples.sorted()
        precondition(!sorted.isEmpty)
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        min = sorted.first!
        max = sorted.last!
    }

    init(median: Double, min: Double, max: Double) {
        self.median = median
        self.min = min
        self.max = max
    }
}

/// A latency histogram (HdrHistogram, 3 significant digits, 1 ns to 100 s) of `samples`
/// in nanoseconds. Built after a run from the raw samples, so the measured loop does no
/// more than store a number.
func histogram(_ samples: [UInt64]) -> Histogram<UInt64> {
    var h = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000_000, numberOfSignificantValueDigits: .three)
    for sample in samples { _ = h.record(Swift.max(1, sample)) }
    return h
}

/// Formats a number with thousands separators and `decimals` decimals.
func fmt(_ value: Double, _ decimals: Int = 1) -> String {
    guard value.isFinite else { return "-" }
    let formatter = NumberFormatter()
    formatter.numberStyle = .decimal
    formatter.minimumFractionDigits = decimals
    formatter.maximumFractionDigits = decimals
    formatter.usesGroupingSeparator = true
    return formatter.string(from: NSNumber(value: value)) ?? String(value)
}

/// Millions per second.
func mps(_ value: Double) -> String { fmt(value / 1e6, value >= 1e8 ? 0 : 1) + " M" }

/// A plain fixed-width table for stdout.
struct Table {
    let title: String
    let columns: [String]
    var rows: [[String]] = []

    init(_ title: String, _ columns: [String]) {
        self.title = title
        self.columns = columns
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        var widths = columns.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = Swift.max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        var out = "\n\(title)\n"
        out += line(columns) + "\n"
        out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in rows { out += line(row) + "\n" }
        return out
    }
}

/// Progress to stderr.
func progress(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
