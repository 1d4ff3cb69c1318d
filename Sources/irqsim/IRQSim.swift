import ArgumentParser

/// irqsim: a small emulated machine to watch (`run`), and a torture test that proves the
/// lifetime rules hold (`torture`).
@main
struct IRQSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "irqsim",
        abstract: "Run an emulated machine on irqemu, or torture its lifetimes.",
        subcommands: [Run.self, Torture.self, Gallery.self, Raise.self],
        defaultSubcommand: Run.self)
}

/// Options both subcommands take.
struct CommonOptions: ParsableArguments {
    @Option(help: "Emulated CPUs (dispatcher threads).")
    var cpus = 2

    @Option(help: "Revocation strategy of the Devres and registrations: rcu or mutex (torture also: broken, broken-cancel).")
    var strategy = "rcu"

    func validate(allowBroken: Bool) throws {
        guard (1...16).contains(cpus) else { throw ValidationError("--cpus must be between 1 and 16") }
        let allowed = allowBroken ? ["rcu", "mutex", "broken", "broken-cancel"] : ["rcu", "mutex"]
        guard allowed.contains(strategy) else {
            throw ValidationError("--strategy must be one of \(allowed.joined(separator: ", "))")
        }
    }
}
