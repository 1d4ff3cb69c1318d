import IRQEmu
import Synchronization
import TestSupport
import Testing

// The README's examples, compiled and run as tests: keep them in step. The README checks
// with `precondition`; here each checked value is returned instead and checked with
// #expect on the test's task, so a broken example fails its test, not the test process.

struct ReadmeRevocableResults: Sendable, Equatable {
    var sum: Int?
    var revoked: Bool
    var countAfterRevoke: Int?
    var configAfterUnbind: String?
    var gracePeriods: UInt64
}

func readmeRevocableExample() throws -> ReadmeRevocableResults {
    let table = Revocable([1, 2, 3])                           // .rcu: a flag, a read lock, a grace period
    let sum = table.tryAccess { $0.reduce(0, +) }              // runs inside a read-side section
    let revoked = try table.revoke()                           // flip, wait ONE grace period, drop
    let countAfterRevoke = table.tryAccess { $0.count }

    let device = Device(name: "dev0")
    try device.bind(ClosureDriver(name: "drv"))
    let config = try device.withBound { bound in try Devres(bound, "fast mode") }
    let report = try device.unbind()                           // every Devres: flip, ONE grace period, drop
    return ReadmeRevocableResults(
        sum: sum, revoked: revoked, countAfterRevoke: countAfterRevoke,
        configAfterUnbind: config.tryAccess { $0 }, gracePeriods: report.gracePeriods)
}

final class Sensor: Handler {                                  // handler data: no locking
    let hits = Atomic<Int>(0)
    func handle(device: borrowing Device.Bound) -> IRQReturn { hits.add(1, ordering: .relaxed); return .handled }
}

struct ReadmeIRQResults: Sendable, Equatable {
    var hits: Int
    var configBeforeUnbind: Int?
    var configAfterUnbind: Int?
    var gracePeriods: UInt64
    var handlerIsSensor: Bool
}

func readmeExample() throws -> ReadmeIRQResults {
    let controller = try IRQController()                       // one emulated CPU
    let irq = try controller.addEventFDLine()                  // raised by a write to its eventfd
    let device = Device(name: "sensor0")
    try device.bind(ClosureDriver(name: "sensor"))
    let sensor = Sensor()
    let (config, registration) = try device.withBound { bound in
        (try Devres(bound, 100), try Registration(bound, controller: controller, irq: irq, name: "sensor0", handler: sensor))
    }
    try controller.raise(irq); try controller.quiesce()        // no sleeps: wait for delivery
    let hits = sensor.hits.load(ordering: .relaxed)
    let before = config.tryAccess { $0 }
    let report = try device.unbind()                           // free_irq, ONE grace period, drop
    return ReadmeIRQResults(
        hits: hits, configBeforeUnbind: before, configAfterUnbind: config.tryAccess { $0 },
        gracePeriods: report.gracePeriods, handlerIsSensor: registration.handler === sensor)
}

@Test func readmeRevocableExampleRuns() throws {
    let outcome = try #require(Threads.onThread { () -> Result<ReadmeRevocableResults, any Error> in
        Result { try readmeRevocableExample() }
    })
    let results = try outcome.get()
    #expect(results.sum == 6)
    #expect(results.revoked)
    #expect(results.countAfterRevoke == nil)
    #expect(results.configAfterUnbind == nil)
    #expect(results.gracePeriods == 1)
}

@Test func readmeExampleRuns() throws {
    let outcome = try #require(Threads.onThread { () -> Result<ReadmeIRQResults, any Error> in
        Result { try readmeExample() }
    })
    let results = try outcome.get()
    #expect(results.hits == 1)
    #expect(results.configBeforeUnbind == 100)
    #expect(results.configAfterUnbind == nil)
    #expect(results.gracePeriods == 1)
    #expect(results.handlerIsSensor)
}
