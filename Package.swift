// swift-tools-version:6.2
//
// irqemu: the Linux kernel's driver lifetime machinery (RCU, Revocable, Devres, device
// bind/unbind, request_irq/free_irq) emulated in userspace over liburcu, with eventfds,
// real-time signals and timerfds as the interrupt hardware.
//
// Layers, each importing only the ones below it:
//   CSupport       C: liburcu wrappers, the signal forwarder, a few syscalls
//   KernelRuntime  the emulated kernel's runtime: the atomic-context checker, KernelLog,
//                  KThread, workqueues (kworker pools, delayed work), the reaper, checked
//                  locks, completions, deadlines
//   RCU            RCU, read guards, RCU pointers, thread registration
//   DeviceModel  Revocable, Device, Driver, Devres, managed work, batched unbind
//   IRQCore      IRQController, request/free, dispatch, Registration
//   IRQSources   eventfd, signal and timerfd lines
//   IRQEmu       umbrella that re-exports the four
//   irqbench, irqsim, irqemu-helper (executables; the helper raises interrupts from another process in tests)
import Foundation
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .strictMemorySafety(),
]

let system = Target.Dependency.product(name: "SystemPackage", package: "swift-system")

let package = Package(
    name: "irqemu",
    products: [
        .library(name: "IRQEmu", targets: ["IRQEmu"]),
        .executable(name: "irqbench", targets: ["irqbench"]),
        .executable(name: "irqsim", targets: ["irqsim"]),
    ],
    // The executables' command-line and histogram packages sit behind this trait, on by
    // default: a client that depends on irqemu with `traits: []` resolves only what the
    // library needs (swift-system).
    traits: [
        .trait(name: "Executables", description: "Build irqbench and irqsim (swift-argument-parser, hdrhistogram-swift)."),
        .default(enabledTraits: ["Executables"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // 0.x: a minor release may break the API, so stay on 0.2 (what this machine carries).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", .upToNextMinor(from: "0.2.0")),
    ],
    targets: [
        .target(
            name: "CSupport",
            path: "CSupport",
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("urcu-memb"), .linkedLibrary("urcu-common")]
        ),
        .target(
            name: "KernelRuntime",
            dependencies: ["CSupport", system],
            swiftSettings: strict),
        .target(name: "RCU", dependencies: ["KernelRuntime", "CSupport"], swiftSettings: strict),
        .target(name: "DeviceModel", dependencies: ["RCU", "KernelRuntime", system], swiftSettings: strict),
        .target(name: "IRQCore", dependencies: ["DeviceModel", "RCU", "KernelRuntime", "CSupport", system], swiftSettings: strict),
        .target(name: "IRQSources", dependencies: ["IRQCore", "KernelRuntime", "CSupport", system], swiftSettings: strict),
        .target(name: "IRQEmu", dependencies: ["KernelRuntime", "RCU", "DeviceModel", "IRQCore", "IRQSources"], swiftSettings: strict),

        // C code that is not a wrapper: the benchmark's baselines. Used by irqbench only.
        .target(
            name: "CBaselines",
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("urcu-memb"), .linkedLibrary("urcu-common")]
        ),
        .executableTarget(
            name: "irqbench",
            dependencies: [
                "IRQEmu", "CBaselines",
                .product(name: "ArgumentParser", package: "swift-argument-parser", condition: .when(traits: ["Executables"])),
                .product(name: "Histogram", package: "hdrhistogram-swift", condition: .when(traits: ["Executables"])),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "irqsim",
            dependencies: [
                "IRQEmu",
                .product(name: "ArgumentParser", package: "swift-argument-parser", condition: .when(traits: ["Executables"])),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // A small child process for cross-process tests and irqsim: raises lines from
        // outside, and demonstrates a data race for the TSan check.
        .executableTarget(name: "irqemu-helper", dependencies: ["CSupport", "KernelRuntime", "RCU"], swiftSettings: [.swiftLanguageMode(.v6)]),

        .target(name: "TestSupport", dependencies: ["KernelRuntime"], path: "Tests/TestSupport", swiftSettings: [.swiftLanguageMode(.v6)]),
        .testTarget(name: "KernelRuntimeTests", dependencies: ["KernelRuntime", "RCU", "TestSupport", system], swiftSettings: [.swiftLanguageMode(.v6)]),
        .testTarget(name: "RCUTests", dependencies: ["RCU", "KernelRuntime", "TestSupport"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .testTarget(name: "DeviceModelTests", dependencies: ["DeviceModel", "RCU", "KernelRuntime", "TestSupport", system], swiftSettings: [.swiftLanguageMode(.v6)]),
        .testTarget(name: "IRQCoreTests", dependencies: ["IRQEmu", "TestSupport", system], swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)

// `make docs` sets IRQEMU_DOCS to build the DocC catalog with swift-docc-plugin; clients and
// ordinary builds never resolve it.
if ProcessInfo.processInfo.environment["IRQEMU_DOCS"] != nil {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"))
}
