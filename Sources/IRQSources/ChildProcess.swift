import CSupport
import Glibc
import IRQCore
import KernelRuntime

/// A child process started with `posix_spawn` (never a bare `fork`): to raise lines from
/// outside the process, as another process would. The child starts with no signal blocked
/// and default dispositions, whatever thread spawned it.
///
/// `ChildProcess.helper(_:)` runs the package's `irqemu-helper`, which dies with its parent
/// (PR_SET_PDEATHSIG). A child not waited for is killed and reaped when released.
public final class ChildProcess: Sendable {
    /// The child's process id.
    public let pid: pid_t
    private let status = LockedValue<Int32?>(nil)

    /// Starts `path` with `arguments`, with each `(parentFD, childFD)` in `fds` duplicated
    /// onto `childFD` in the child (close-on-exec cleared).
    public init(path: String, arguments: [String], fds: [(Int32, Int32)] = []) throws(IRQError) {
        let argv = unsafe ([path] + arguments).map { unsafe strdup($0) } + [nil]
        defer { for unsafe arg in unsafe argv { unsafe free(arg) } }
        let pairs = fds.flatMap { [$0.0, $0.1] }
        var pid: pid_t = 0
        let rc = unsafe argv.withUnsafeBufferPointer { args in
            unsafe pairs.withUnsafeBufferPointer { pairs in
                unsafe CSupport_spawn(&pid, path, args.baseAddress!, pairs.baseAddress, Int32(fds.count))
            }
        }
        guard rc == 0 else { throw .system(call: "posix_spawn(\(path))", errno: .init(rawValue: rc)) }
        self.pid = pid
    }

    deinit {
        if status.withLock({ $0 }) == nil {
            Glibc.kill(pid, SIGKILL)
            var raw: Int32 = 0
            _ = unsafe waitpid(pid, &raw, 0)
        }
    }

    /// The running executable (`/proc/self/exe`): a program that starts copies of itself
    /// (as irqsim does for its raiser children) needs nothing else built.
    public static var currentExecutablePath: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = unsafe readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "/proc/self/exe"
    }

    /// Makes the calling process die (SIGKILL) when its parent does (`PR_SET_PDEATHSIG`):
    /// for a child started with `ChildProcess`.
    public static func dieWithParent() { _ = CSupport_set_parent_death_signal(SIGKILL) }

    /// The package's test helper executable (`irqemu-helper`), found beside the running
    /// executable, or at `$IRQEMU_HELPER`. It is built with the package's tests.
    public static var helperPath: String {
        if let override = unsafe getenv("IRQEMU_HELPER") { return unsafe String(cString: override) }
        return packageExecutable("irqemu-helper")
    }

    /// An executable of this package (`irqsim`, `irqemu-helper`), found beside the running
    /// executable or, for a test bundle, one directory up.
    public static func packageExecutable(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = unsafe readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "."
        var directory = exe
        while let last = directory.last, last != "/" { directory.removeLast() }
        // Test bundles live one level down (…/debug/irqemuPackageTests.xctest).
        for candidate in [directory + name, directory + "../" + name] where unsafe access(candidate, X_OK) == 0 {
            return candidate
        }
        return directory + name
    }

    /// Runs `irqemu-helper` with `arguments`.
    public static func helper(_ arguments: [String], fds: [(Int32, Int32)] = []) throws(IRQError) -> ChildProcess {
        try ChildProcess(path: helperPath, arguments: arguments, fds: fds)
    }

    /// Waits for the child to exit and reaps it; returns its exit status (128 + signal if
    /// killed). `timeout` follows `Deadline`'s policy (nil: no limit; zero: check once).
    /// A child already reaped returns its status at once.
    ///
    /// - Throws: `timedOut` if it is still running; `atomicContext` in atomic context.
    @available(*, noasync, message: "blocks the thread")
    @discardableResult
    public func wait(timeout: Duration? = .seconds(30), file: StaticString = #fileID, line: UInt = #line) throws(IRQError) -> Int32 {
        if let status = status.withLock({ $0 }) { return status }
        do {
            try AtomicContext.mightSleep("ChildProcess.wait(timeout:)", file: file, line: line)
        } catch { throw .atomicContext(error) }
        let deadline = Deadline.after(timeout)
        while true {
            var raw: Int32 = 0
            let r = unsafe waitpid(pid, &raw, WNOHANG)
            if r == pid {
                let code = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                status.withLock { $0 = code }
                return code
            }
            if r == -1 && errno != EINTR { throw .system(call: "waitpid(\(pid))", errno: .init(rawValue: errno)) }
            if deadline.hasPassed { throw .timedOut(operation: "wait for child \(pid)", after: timeout ?? .zero) }
            usleep(1_000)
        }
    }

    /// Sends `signal` (default SIGKILL) to the child.
    public func kill(_ signal: Int32 = SIGKILL) { Glibc.kill(pid, signal) }
}
