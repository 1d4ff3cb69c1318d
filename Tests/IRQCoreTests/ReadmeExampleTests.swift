import IRQEmu
import Synchronization
import Testing
import TestSupport

// The README's example, compiled and run as a test: keep the two in step.

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

@Test func readmeExampleRuns() throws {
    #expect(Threads.onThread { (try? readmeExample()) != nil } == true)
}
