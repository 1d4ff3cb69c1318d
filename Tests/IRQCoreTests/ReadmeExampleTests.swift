import IRQEmu
import Synchronization
import Testing
import TestSupport

// The README's examples, compiled and run as tests: keep them in step.

func readmeRevocableExample() throws {
    let table = Revocable([1, 2, 3])                           // .rcu: a flag, a read lock, a grace period
    precondition(table.tryAccess { $0.reduce(0, +) } == 6)     // runs inside a read-side section
    let revoked = try table.revoke()                           // flip, wait ONE grace period, drop
    precondition(revoked && table.tryAccess { $0.count } == nil)

    let device = Device(name: "dev0")
    try device.bind(ClosureDriver(name: "drv"))
    let config = try device.withBound { bound in try Devres(bound, "fast mode") }
    let report = try device.unbind()                           // every Devres: flip, ONE grace period, drop
    precondition(config.tryAccess { $0 } == nil && report.gracePeriods == 1)
}

final class Sensor: Handler {                                  // handler data: no locking
    let hits = Atomic<Int>(0)
    func handle(device: borrowing Device.Bound) -> IRQReturn { hits.add(1, ordering: .relaxed); return .handled }
}

func readmeExample() throws {
    let controller = try IRQController()                       // one emulated CPU
    let irq = try controller.addEventFDLine()                  // raised by a write to its eventfd
    let device = Device(name: "sensor0")
    try device.bind(ClosureDriver(name: "sensor"))
    let sensor = Sensor()
    let (config, registration) = try device.withBound { bound in
        (try Devres(bound, 100), try Registration(bound, controller: controller, irq: irq, name: "sensor0", handler: sensor))
    }
    try controller.raise(irq); try controller.quiesce()        // no sleeps: wait for delivery
    precondition(sensor.hits.load(ordering: .relaxed) == 1 && config.tryAccess { $0 } == 100)
    let report = try device.unbind()                           // free_irq, ONE grace period, drop
    precondition(config.tryAccess { $0 } == nil && report.gracePeriods == 1 && registration.handler === sensor)
}

@Test func readmeRevocableExampleRuns() throws {
    #expect(Threads.onThread { (try? readmeRevocableExample()) != nil } == true)
}

@Test func readmeExampleRuns() throws {
    #expect(Threads.onThread { (try? readmeExample()) != nil } == true)
}
