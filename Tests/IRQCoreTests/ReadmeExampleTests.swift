import IRQEmu
import Synchronization
import TestSupport
import Testing

// The README's examples, compiled and run as tests: keep them in step (.ci/clients.sh also
// pastes the README's `compose` blocks into one main.swift and runs it). The README checks
// with `precondition`; here each checked value is returned instead and checked with #expect
// on the test's task, so a broken example fails its test, not the test process. The async
// example (the fourth) is a test already: it is here word for word.

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

    let disk = Device(name: "disk0")
    try disk.bind(ClosureDriver(name: "ahci"))
    let config = try disk.withBound { bound in try Devres(bound, "fast mode") }
    let diskUnbind = try disk.unbind()                         // every Devres: flip, ONE grace period, drop
    return ReadmeRevocableResults(
        sum: sum, revoked: revoked, countAfterRevoke: countAfterRevoke,
        configAfterUnbind: config.tryAccess { $0 }, gracePeriods: diskUnbind.gracePeriods)
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
    var stillRequested: Bool
}

func readmeExample() throws -> ReadmeIRQResults {
    let controller = try IRQController()                           // one emulated CPU
    let line = try controller.addEventFDLine()                     // raised by a write to its eventfd
    let sensor0 = Device(name: "sensor0", resources: [.irq(line, on: controller, name: "data-ready")])
    try sensor0.bind(ClosureDriver(name: "sensor"))
    let sensor = Sensor()
    let (calibration, registration) = try sensor0.withBound { bound in
        (try Devres(bound, 100), try Registration(try bound.irq(named: "data-ready"), name: "sensor0", handler: sensor))
    }
    try controller.raise(line); try controller.quiesce()           // no sleeps: wait for delivery
    let hits = sensor.hits.load(ordering: .relaxed)
    let before = calibration.tryAccess { $0 }
    let sensorUnbind = try sensor0.unbind()                        // free_irq, ONE grace period, drop
    return ReadmeIRQResults(
        hits: hits, configBeforeUnbind: before, configAfterUnbind: calibration.tryAccess { $0 },
        gracePeriods: sensorUnbind.gracePeriods, stillRequested: registration.isRequested)
}

final class Doorbell: Handler, WorkItem {                      // the hard half and the bottom half
    let work = Work(name: "doorbell")
    let rung = Atomic<Int>(0), served = Atomic<Int>(0)
    func handle(device: borrowing Device.Bound) -> IRQReturn {   // hard-IRQ context: acknowledge, queue
        rung.add(1, ordering: .relaxed)
        Workqueue.system.enqueue(self)                           // one retain, no allocation, never sleeps
        return .handled
    }
    func run() { served.add(1, ordering: .relaxed) }            // on a kworker, process context: may sleep
}

struct ReadmeWorkResults: Sendable, Equatable {
    var rung: Int
    var served: Int
    var gracePeriods: UInt64
    var enqueueAfterUnbind: EnqueueResult
}

func readmeWorkExample() throws -> ReadmeWorkResults {
    let bellController = try IRQController()
    let bellLine = try bellController.addEventFDLine()
    let bell0 = Device(name: "bell0", resources: [.irq(bellLine, on: bellController)])
    let doorbell = Doorbell()
    try bell0.bind(ClosureDriver(name: "doorbell") { bound in
        try bound.device.addWork(bound, doorbell)                    // registered first: cancelled last
        try bound.device.register(bound, try Registration(try bound.irq(at: 0), name: "bell0", handler: doorbell))
    })
    try bellController.raise(bellLine); try bellController.quiesce()
    try doorbell.flushWork()                                         // wait for the bottom half
    let rung = doorbell.rung.load(ordering: .relaxed), served = doorbell.served.load(ordering: .relaxed)
    let bellUnbind = try bell0.unbind()                              // free_irq, then disableWorkSync
    return ReadmeWorkResults(
        rung: rung, served: served, gracePeriods: bellUnbind.gracePeriods,
        enqueueAfterUnbind: Workqueue.system.enqueue(doorbell))
}

@Test func readmeWorkExampleRuns() throws {
    let outcome = try #require(Threads.onThread { () -> Result<ReadmeWorkResults, any Error> in
        Result { try readmeWorkExample() }
    })
    let results = try outcome.get()
    #expect(results.rung == 1)
    #expect(results.served == 1)
    #expect(results.gracePeriods == 1)
    #expect(results.enqueueAfterUnbind == .disabled)
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
    #expect(!results.stillRequested)
}

// The README's third example, as it is there.
@Test func sensorInAnAsyncTest() async throws {
    let controller = try IRQController()
    let line = try controller.addEventFDLine()
    let sensor1 = Device(name: "sensor1", resources: [.irq(line, on: controller, name: "data-ready")])
    try await sensor1.bind(ClosureDriver(name: "sensor"))          // probe runs on a runtime thread
    let sensor = Sensor()                                          // the handler data of the example above
    let registration = try sensor1.withBound { bound in            // withBound never sleeps
        try Registration(try bound.irq(named: "data-ready"), name: "sensor1", handler: sensor)
    }
    try controller.raise(line); try await controller.quiesce()     // no thread of the pool waits
    #expect(sensor.hits.load(ordering: .relaxed) == 1)
    let report = try await sensor1.unbind()                        // free_irq, ONE shared grace period, drop
    #expect(report.gracePeriods == 1 && !registration.isRequested)

    let tables = (0..<1_000).map { Revocable([$0]) }               // 1,000 awaits share a few grace periods
    try await withThrowingDiscardingTaskGroup { group in
        for table in tables { group.addTask { try await table.revoke() } }
    }
    #expect(tables.allSatisfy { $0.tryAccess { $0 } == nil })
}
