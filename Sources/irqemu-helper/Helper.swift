// irqemu-helper: a child process for cross-process tests and irqsim.
//
//   irqemu-helper eventfd FD COUNT [INTERVAL_US]   write COUNT times to eventfd FD
//   irqemu-helper signal PID SIGNO COUNT [INTERVAL_US]   sigqueue SIGNO to PID, COUNT times
//   irqemu-helper rcu-race sync|nosync   flip, (synchronize,) free while readers read:
//                                        under TSan, "nosync" must be reported as a race
//
// It dies with its parent (PR_SET_PDEATHSIG) and exits 0 on success.
import CSupport
import Glibc
import KernelRuntime
import RCU
import Synchronization

@main
struct Helper {
    static func main() {
        _ = CSupport_set_parent_death_signal(SIGKILL)
        let args = CommandLine.arguments
        guard args.count >= 2 else { usage() }
        switch args[1] {
        case "eventfd":
            guard args.count >= 4, let fd = Int32(args[2]), let count = Int(args[3]) else { usage() }
            let interval = args.count > 4 ? UInt32(args[4]) ?? 0 : 0
            for _ in 0..<count {
                var one: UInt64 = 1
                guard unsafe write(fd, &one, 8) == 8 else { fail("write(\(fd))") }
                if interval > 0 { usleep(interval) }
            }
        case "signal":
            guard args.count >= 5, let pid = Int32(args[2]), let signo = Int32(args[3]), let count = Int(args[4]) else { usage() }
            let interval = args.count > 5 ? UInt32(args[5]) ?? 0 : 0
            for i in 0..<count {
                var value = sigval()
                value.sival_int = Int32(truncatingIfNeeded: i)
                while sigqueue(pid, signo, value) != 0 {
                    guard errno == EAGAIN else { fail("sigqueue(\(pid), \(signo))") }
                    usleep(100)  // the target's queue of pending real-time signals is full
                }
                if interval > 0 { usleep(interval) }
            }
        case "rcu-race":
            guard args.count >= 3 else { usage() }
            rcuRace(synchronize: args[2] == "sync")
        default:
            usage()
        }
        exit(0)
    }

    static func usage() -> Never {
        printError("usage: irqemu-helper eventfd FD COUNT [US] | signal PID SIGNO COUNT [US] | rcu-race sync|nosync")
        exit(2)
    }

    static func fail(_ what: String) -> Never {
        printError("irqemu-helper: \(what): errno \(errno)")
        exit(1)
    }

    static func printError(_ message: String) {
        let line = message + "\n"
        _ = line.withCString { unsafe write(2, $0, strlen($0)) }
    }

    /// Readers read a published object's plain field inside read-side sections; the writer
    /// unpublishes it, waits a grace period (or not), then writes the field ("frees" it).
    /// With the grace period the pattern is correct; without it TSan must see a race.
    static func rcuRace(synchronize: Bool) {
        final class Slot: @unchecked Sendable {
            var value = 0  // deliberately not atomic: TSan checks who may touch it when
        }
        let rounds = 200
        let slots = (0..<rounds).map { _ in Slot() }
        let published = Atomic<Int>(-1)
        let stop = Atomic<Bool>(false)
        let readers = (0..<2).map { _ in
            try! KThread(name: "race-reader") {
                var sum = 0
                while !stop.load(ordering: .acquiring) {
                    RCU.read {
                        let index = published.load(ordering: .acquiring)
                        if index >= 0 { sum &+= slots[index].value }
                    }
                }
                if sum == -1 { print(sum) }
            }
        }
        for index in 0..<rounds {
            published.store(index, ordering: .releasing)
            usleep(200)
            published.store(-1, ordering: .releasing)
            if synchronize { try! RCU.synchronize() }
            slots[index].value = 0xDEAD  // the "free"
        }
        stop.store(true, ordering: .releasing)
        for reader in readers { try! reader.join() }
    }
}
