import Foundation
import IRQEmu

/// What the numbers were measured on.
struct Machine: Codable {
    let cpu_model: String
    let cores: Int
    let kernel: String
    let liburcu_version: String
    let membarrier: Bool
    let swift: String

    static func current() -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?" } ?? "?"
        var uts = utsname()
        uname(&uts)
        let release = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return Machine(
            cpu_model: model,
            cores: ProcessInfo.processInfo.activeProcessorCount,
            kernel: release,
            liburcu_version: liburcuVersion(),
            membarrier: RCU.usesMembarrier,
            swift: swiftVersion())
    }

    private static func liburcuVersion() -> String {
        for dir in ["/usr/lib/x86_64-linux-gnu/pkgconfig", "/usr/lib/aarch64-linux-gnu/pkgconfig", "/usr/lib/pkgconfig", "/usr/local/lib/pkgconfig"] {
            if let pc = try? String(contentsOfFile: dir + "/liburcu-memb.pc", encoding: .utf8),
               let line = pc.split(separator: "\n").first(where: { $0.hasPrefix("Version:") }) {
                return line.dropFirst("Version:".count).trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }

    private static func swiftVersion() -> String {
        #if compiler(>=6.3)
        return "6.3+"
        #else
        return "6.x"
        #endif
    }

    var summary: String {
        "\(cpu_model), \(cores) cores, Linux \(kernel), liburcu \(liburcu_version), membarrier \(membarrier ? "yes" : "no")"
    }
}
