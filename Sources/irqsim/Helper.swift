import ArgumentParser
import Glibc
import IRQEmu

/// irqsim's own child process, started from irqsim's executable (`/proc/self/exe`), so a run
/// needs nothing but irqsim built: raises lines from another process, as a device's firmware
/// or another program would.
///
///     irqsim raise eventfd FD COUNT [INTERVAL_US]        write COUNT times to eventfd FD
///     irqsim raise signal PID SIGNO COUNT [INTERVAL_US]  sigqueue SIGNO to PID, COUNT times
///
/// It dies with its parent (PR_SET_PDEATHSIG) and exits 0 on success.
enum Helper {
    /// Starts irqsim itself as a raiser child with `arguments` (after `raise`).
    static func spawn(_ arguments: [String], fds: [(Int32, Int32)] = []) throws -> ChildProcess {
        try ChildProcess(path: ChildProcess.currentExecutablePath, arguments: ["raise"] + arguments, fds: fds)
    }
}

extension IRQSim {
    struct Raise: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Raise lines from another process (irqsim starts itself with this).", shouldDisplay: false)

        @Argument(help: "eventfd FD COUNT [INTERVAL_US] | signal PID SIGNO COUNT [INTERVAL_US]")
        var words: [String]

        func run() throws {
            ChildProcess.dieWithParent()
            func number<T: FixedWidthInteger>(_ i: Int) throws -> T {
                guard i < words.count, let n = T(words[i]) else { throw ValidationError("bad arguments: \(words)") }
                return n
            }
            switch words.first {
            case "eventfd":
                let fd: Int32 = try number(1), count: Int = try number(2)
                let interval: UInt32 = words.count > 3 ? try number(3) : 0
                for _ in 0..<count {
                    var one: UInt64 = 1
                    guard unsafe write(fd, &one, 8) == 8 else { throw ExitCode(1) }
                    if interval > 0 { usleep(interval) }
                }
            case "signal":
                let pid: Int32 = try number(1), signo: Int32 = try number(2), count: Int = try number(3)
                let interval: UInt32 = words.count > 4 ? try number(4) : 0
                for i in 0..<count {
                    var value = sigval()
                    value.sival_int = Int32(truncatingIfNeeded: i)
                    while sigqueue(pid, signo, value) != 0 {
                        guard errno == EAGAIN else { throw ExitCode(1) }
                        usleep(100)  // the target's queue of pending real-time signals is full
                    }
                    if interval > 0 { usleep(interval) }
                }
            default:
                throw ValidationError("raise eventfd … | raise signal …")
            }
        }
    }
}
