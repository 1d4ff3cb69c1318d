import Foundation
import IRQEmu
import TestSupport
import Testing

/// Under `make tsan` only: the grace-period annotations do not hide real races. The helper
/// (built with TSan too) runs "flip, synchronize, free" — clean — and "flip, free" with no
/// grace period, which TSan must report.
@Suite(.serialized, .enabled(if: Scale.isTSan, "needs the ThreadSanitizer build (make tsan)"), .timeLimit(.minutes(2)))
struct TSanTests {
    @Test(arguments: ["sync", "nosync"])
    func graceAnnotationsKeepRealRacesVisible(mode: String) throws {
        let path = NSTemporaryDirectory() + "irqemu-tsan-\(mode)-\(getpid()).log"
        let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
        #expect(fd >= 0)
        defer {
            close(fd)
            unlink(path)
        }
        let status = try onThread(timeout: .seconds(100)) { () -> Int32? in
            try ChildProcess.helper(["rcu-race", mode], fds: [(fd, 2)]).wait(timeout: .seconds(90))
        }
        let output = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        if mode == "sync" {
            #expect(status == 0)
            #expect(!output.contains("ThreadSanitizer: data race"), "\(output.prefix(2000))")
        } else {
            #expect(status == 66, "TSan's exit code for reported races")
            #expect(output.contains("WARNING: ThreadSanitizer: data race"))
        }
    }
}
