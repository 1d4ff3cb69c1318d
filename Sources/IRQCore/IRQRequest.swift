import DeviceModel
import KernelRuntime

/// An IRQ of a bound device, ready to be requested: upstream's `IrqRequest`, which a driver
/// gets from its device (`irq_by_index`, `irq_by_name`) and hands to
/// `Registration.init(_:flags:name:strategy:handler:)`.
///
/// It names the device, so the registration ties the IRQ to that device's binding; made
/// from a stale binding, the registration fails with `ENODEV`.
public struct IRQRequest: Sendable {
    /// The device the IRQ belongs to.
    public let device: Device
    /// The controller the line is on.
    public let controller: IRQController
    /// The line.
    public let irq: IRQNumber
}

/// What an IRQ resource of a device holds: a line of a controller.
struct IRQLineResource: Sendable {
    let controller: IRQController
    let irq: IRQNumber
}

/// The IRQ kind of device resource.
extension Device.Resource.Kind {
    /// An interrupt line (`IORESOURCE_IRQ`).
    public static let irq = Device.Resource.Kind(rawValue: "irq")
}

/// IRQ resources.
extension Device.Resource {
    /// An IRQ resource: line `irq` of `controller`, optionally named (as a device tree's
    /// `interrupt-names`).
    public static func irq(_ irq: IRQNumber, on controller: IRQController, name: String? = nil) -> Device.Resource {
        Device.Resource(kind: .irq, name: name, value: IRQLineResource(controller: controller, irq: irq))
    }
}

/// A bound device's IRQs (the platform device's `irq_by_index`, `irq_by_name`).
extension Device.Bound {
    /// The device's `index`th IRQ resource (`irq_by_index`, `platform_get_irq`).
    ///
    /// - Throws: `noSuchResource` (ENXIO) if the device has no such IRQ, after printing the
    ///   kernel's `IRQ index N not found` to the device's log.
    public func irq(at index: Int) throws(IRQError) -> IRQRequest {
        guard let request = optionalIRQ(at: index) else {
            device.log.printk("\(device.name): IRQ index \(index) not found")
            throw .noSuchResource(device: device.name, resource: "IRQ index \(index)")
        }
        return request
    }

    /// The device's IRQ resource named `name` (`irq_by_name`, `platform_get_irq_byname`).
    ///
    /// - Throws: `noSuchResource` (ENXIO) if the device has no such IRQ, after printing the
    ///   kernel's `IRQ NAME not found` to the device's log.
    public func irq(named name: String) throws(IRQError) -> IRQRequest {
        guard let request = optionalIRQ(named: name) else {
            device.log.printk("\(device.name): IRQ \(name) not found")
            throw .noSuchResource(device: device.name, resource: "IRQ \(name)")
        }
        return request
    }

    /// `irq(at:)` without the log line: nil if the device has no such IRQ
    /// (`optional_irq_by_index`).
    public func optionalIRQ(at index: Int) -> IRQRequest? {
        request(device.resource(.irq, at: index))
    }

    /// `irq(named:)` without the log line: nil if the device has no such IRQ
    /// (`optional_irq_by_name`).
    public func optionalIRQ(named name: String) -> IRQRequest? {
        request(device.resource(.irq, named: name))
    }

    private func request(_ resource: Device.Resource?) -> IRQRequest? {
        guard let line = resource?.value as? IRQLineResource else { return nil }
        return IRQRequest(device: device, controller: line.controller, irq: line.irq)
    }
}
