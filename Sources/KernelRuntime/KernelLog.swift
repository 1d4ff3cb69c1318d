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
    public let name: String
    /// Echo recorded lines to standard error.
    public let echo: Bool
    private let panicFlag: Atomic<Bool>
    private let state = LockedValue(State())

    private struct State {
        var messages: [String] = []
        var reports: [KernelReport] = []
        var lastEchoedReport: UInt64 = 0
    }

    /// The process-wide default log. Echoes to standard error.
    public static let standard = KernelLog(name: "kernel", echo: true)

    /// `panic_on_warn` for every log: a report crashes the process with the report as
    /// message.
    public static let panicOnReportEverywhere = Atomic<Bool>(false)

    public init(name: String, echo: Bool = false, panicOnReport: Bool = false) {
        self.name = name
        self.echo = echo
        self.panicFlag = Atomic(panicOnReport)
    }

    /// `panic_on_warn` for this log: a report crashes the process with the report as message.
    public var panicOnReport: Bool {
        get { panicFlag.load(ordering: .relaxed) }
        set { panicFlag.store(newValue, ordering: .relaxed) }
    }

    /// Records a line (the kernel's `printk`).
    public func printk(_ line: String) {
        state.withLock { $0.messages.append(line) }
        if echo { Self.writeToStandardError(line) }
    }

    /// Records a report and its lines, echoes it (rate-limited), and panics if asked to.
    public func record(_ report: KernelReport) {
        let now = monotonicNanoseconds()
        let shouldEcho = state.withLock { state -> Bool in
            state.reports.append(report)
            state.messages.append(contentsOf: report.lines)
            guard echo, now &- state.lastEchoedReport >= 1_000_000_000 || state.lastEchoedReport == 0 else { return false }
            state.lastEchoedReport = now
            return true
        }
        if shouldEcho { Self.writeToStandardError(report.description) }
        if panicOnReport || Self.panicOnReportEverywhere.load(ordering: .relaxed) {
            fatalError("Kernel panic - not syncing: panic_on_warn set\n\(report.description)")
        }
    }

    /// Every line recorded so far, reports included.
    public var messages: [String] { state.withLock { $0.messages } }

    /// Every report recorded so far.
    public var reports: [KernelReport] { state.withLock { $0.reports } }

    /// Reports of one kind.
    public func reports(_ kind: KernelReport.Kind) -> [KernelReport] { reports.filter { $0.kind == kind } }

    /// Forgets what was recorded.
    public func clear() { state.withLock { $0 = State() } }

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
