import Glibc
import Synchronization

/// Where the emulated kernel's messages and reports go: a per-device (or per-controller)
/// `dmesg`.
///
/// Every line and every report is recorded, so a test reads what its own device or
/// controller printed, even while other tests run in parallel. A log may also echo to
/// standard error; reports are echoed at most once per second per log, as the kernel
/// rate-limits them. `KernelLog.standard` is the process-wide default and echoes.
///
/// Which log a report goes to: the one the API was given (a device's, a controller's), else
/// the one in scope on the calling thread (`KernelLog.withCurrent`), else `standard`.
///
/// - Note: All methods are thread-safe.
public final class KernelLog: Sendable {
    /// Lines a log keeps unless told otherwise: the newest 4,096 (the kernel's ring keeps
    /// the newest `2^CONFIG_LOG_BUF_SHIFT` bytes).
    public static let defaultCapacity = 4096
    /// Reports a log keeps, with their text, unless told otherwise: the newest 256.
    public static let defaultReportCapacity = 256

    /// The log's name.
    public let name: String
    /// Echo recorded lines to standard error.
    public let echo: Bool
    /// The most lines `messages` holds; older lines are dropped (and counted).
    public let capacity: Int
    /// The most reports `reports` holds; older ones are dropped (and counted), but every
    /// report stays counted by kind.
    public let reportCapacity: Int
    private let panicFlag: Atomic<Bool>
    /// The faults configured for this log's owner (a device's or controller's), named in
    /// every report recorded here, whichever thread makes it.
    private let faultsNote = LockedValue<String?>(nil)
    private let state: LockedValue<State>

    private struct State {
        var messages: Ring<String>
        var reports: Ring<KernelReport>
        var reportCounts: [KernelReport.Kind: Int] = [:]
        var lastEchoedReport: UInt64 = 0
    }

    /// The process-wide default log. Echoes to standard error.
    public static let standard = KernelLog(name: "kernel", echo: true)

    /// `panic_on_warn` for every log: a report crashes the process with the report as
    /// message.
    public static let panicOnReportEverywhere = Atomic<Bool>(false)

    /// A log named `name`.
    ///
    /// - Parameters:
    ///   - name: The log's name.
    ///   - echo: Also write lines to standard error (reports at most once a second).
    ///   - panicOnReport: Crash on the first report (`panic_on_warn`).
    ///   - capacity: Lines kept (at least 1).
    ///   - reportCapacity: Reports kept with their text (at least 1).
    public init(
        name: String, echo: Bool = false, panicOnReport: Bool = false,
        capacity: Int = KernelLog.defaultCapacity, reportCapacity: Int = KernelLog.defaultReportCapacity
    ) {
        self.name = name
        self.echo = echo
        self.capacity = max(1, capacity)
        self.reportCapacity = max(1, reportCapacity)
        self.panicFlag = Atomic(panicOnReport)
        self.state = LockedValue(State(messages: Ring(capacity: max(1, capacity)), reports: Ring(capacity: max(1, reportCapacity))))
    }

    /// `panic_on_warn` for this log: a report crashes the process with the report as message.
    public var panicOnReport: Bool {
        get { panicFlag.load(ordering: .relaxed) }
        set { panicFlag.store(newValue, ordering: .relaxed) }
    }

    /// Records a line (the kernel's `printk`). Callable from any context; never sleeps.
    public func printk(_ line: String) {
        state.withLock { $0.messages.append(line) }
        if echo { Self.writeToStandardError(line) }
    }

    /// Notes that this log's owner injects `faults`: reports recorded here name them.
    package func noteFaults(_ faults: Faults?) {
        guard let faults, faults.isActive else { return }
        faultsNote.withLock { $0 = "irqemu: faults injected: \(faults)" }
    }

    /// Records a report and its lines, echoes it (rate-limited), and panics if asked to.
    /// Callable from any context.
    public func record(_ report: KernelReport) {
        var report = report
        if let note = faultsNote.withLock({ $0 }), !report.lines.contains(note) {
            report = KernelReport(
                kind: report.kind, lines: report.lines + [note], function: report.function, file: report.file,
                line: report.line, tid: report.tid, threadName: report.threadName, time: report.time)
        }
        let now = monotonicNanoseconds()
        let shouldEcho = state.withLock { state -> Bool in
            state.reports.append(report)
            state.reportCounts[report.kind, default: 0] += 1
            for line in report.lines { state.messages.append(line) }
            guard echo, now &- state.lastEchoedReport >= 1_000_000_000 || state.lastEchoedReport == 0 else { return false }
            state.lastEchoedReport = now
            return true
        }
        if shouldEcho { Self.writeToStandardError(report.description) }
        if panicOnReport || Self.panicOnReportEverywhere.load(ordering: .relaxed) {
            fatalError("Kernel panic - not syncing: panic_on_warn set\n\(report.description)")
        }
    }

    /// The lines kept (the newest `capacity`, reports included), oldest first.
    public var messages: [String] { state.withLock { $0.messages.elements } }

    /// Lines dropped from `messages` to keep within `capacity`.
    public var droppedMessages: Int { state.withLock { $0.messages.dropped } }

    /// The reports kept (the newest `reportCapacity`), oldest first.
    public var reports: [KernelReport] { state.withLock { $0.reports.elements } }

    /// Reports dropped from `reports` to keep within `reportCapacity` (still counted in
    /// `reportCount`).
    public var droppedReports: Int { state.withLock { $0.reports.dropped } }

    /// Reports kept of one kind.
    public func reports(_ kind: KernelReport.Kind) -> [KernelReport] { reports.filter { $0.kind == kind } }

    /// Every report recorded, kept or dropped.
    public var reportCount: Int { state.withLock { $0.reportCounts.values.reduce(0, +) } }

    /// Every report of `kind` recorded, kept or dropped.
    public func reportCount(_ kind: KernelReport.Kind) -> Int { state.withLock { $0.reportCounts[kind] ?? 0 } }

    /// Forgets what was recorded, counts included.
    public func clear() {
        state.withLock { state in
            state = State(messages: Ring(capacity: capacity), reports: Ring(capacity: reportCapacity))
        }
    }

    /// The log in scope on the calling thread, or `standard`.
    public static var current: KernelLog {
        guard let raw = unsafe ThreadState.log else { return standard }
        // SAFETY: `withCurrent` stored an unretained reference and keeps the log alive
        // until it restores the previous value.
        return unsafe Unmanaged<KernelLog>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Runs `body` with `log` as the calling thread's current log: reports made on this
    /// thread by APIs that were not given a log go to it.
    public static func withCurrent<R, E: Error>(_ log: KernelLog, _ body: () throws(E) -> R) throws(E) -> R {
        let previous = unsafe ThreadState.log
        unsafe ThreadState.log = Unmanaged.passUnretained(log).toOpaque()
        defer { unsafe ThreadState.log = previous }
        return try body()  // `log` is a parameter: alive until we return
    }

    static func writeToStandardError(_ text: String) {
        var line = text
        line.append("\n")
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = unsafe write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { break }
            }
        }
    }
}

/// A fixed-capacity ring: appending to a full ring drops the oldest element.
struct Ring<Element> {
    private var storage: [Element] = []
    private var start = 0
    let capacity: Int
    /// Elements dropped so far.
    private(set) var dropped = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    mutating func append(_ element: Element) {
        if storage.count < capacity {
            storage.append(element)
        } else {
            storage[start] = element
            start = (start + 1) % capacity
            dropped += 1
        }
    }

    /// Oldest first.
    var elements: [Element] { Array(storage[start...] + storage[..<start]) }
}
extension Ring: Sendable where Element: Sendable {}
