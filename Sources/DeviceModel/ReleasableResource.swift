/// A Devres value with a teardown of its own that must run when its Devres is released, at
/// its place in the device's newest-first order, even if other references to the value are
/// still alive (an IRQ registration's free_irq is one).
///
/// `releaseResource()` is called exactly once per Devres release, in process context
/// unless the drop happened where it could not wait (then it is called anyway and must
/// defer its own sleeping part). The value is dropped right after.
public protocol ReleasableResource: AnyObject, Sendable {
    /// Tears the resource down. Called once, by the Devres release.
    func releaseResource()
}
