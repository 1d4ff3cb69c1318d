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
        guard rc == 0 else { throw .system(call: "posix_spawn(\(path))", errno: rc) }
        self.pid = pid
    }

    deinit {
        if status.withLock({ $0 }) == nil {
            Glibc.kill(pid, SIGKILL)
            var raw: Int32 = 0
            _ = unsafe waitpid(pid, &raw, 0)
        }
    }

    /// The package's helper executable (`irqemu-helper`), found beside the running
    /// executable, or at `$IRQEMU_HELPER`.
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

    /// Waits up to `timeout` seconds (`.infinity`: no limit; NaN or ≤ 0: a check only) for
    /// the child to exit and reaps it. Returns its exit status (128 + signal if killed), or
    /// nil if it is still running.
    @available(*, noasync, message: "blocks the thread")
    public func wait(timeout: Double = 30) -> Int32? {
        if let status = status.withLock({ $0 }) { return status }
        let deadline = timeout.isNaN ? Deadline.now : Deadline.after(seconds: timeout)
        while true {
            var raw: Int32 = 0
            let r = unsafe waitpid(pid, &raw, WNOHANG)
            if r == pid {
                let code = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                status.withLock { $0 = code }
                return code
            }
            if r == -1 && errno != EINTR { return nil }
            if deadline.hasPassed { return nil }
            usleep(1_000)
        }
    }

    /// Sends `signal` (default SIGKILL) to the child.
    public func kill(_ signal: Int32 = SIGKILL) { Glibc.kill(pid, signal) }
}
