import Foundation
import IRQEmu
import TestSupport
import Testing

/// A shared action's `devID` is an identity that cannot be reused while the action lives:
/// the action holds its cookie, so no temporary cookie can take the dead cookie's address
/// and free someone else's action.
@Suite(.timeLimit(.minutes(2)))
struct DevIDIdentityTests {
    /// A weak reference to a cookie the test does not hold.
    final class WeakCookie: @unchecked Sendable {
        // SAFETY: written once before it is shared, read on the test's threads in turn.
        weak var cookie: Cookie?
        init(_ cookie: Cookie) { self.cookie = cookie }
    }

    /// Requests a shared action on `irq` with a cookie made here and kept by nobody but
    /// the action; returns a weak reference to it.
    static func requestWithTemporaryCookie(_ controller: IRQController, _ irq: IRQNumber, hits: Hits) throws -> WeakCookie {
        let cookie = Cookie("temporary")
        let weak = WeakCookie(cookie)
        try controller.requestIRQ(irq, flags: .shared, name: "temporary", devID: cookie) { _ in
            hits.hit()
            return .handled
        }
        return weak
    }

    /// The identity of the cookie behind `weak`, taken through a short-lived strong reference.
    static func identity(_ weak: WeakCookie) -> ObjectIdentifier? { weak.cookie.map(ObjectIdentifier.init) }

    /// Frees the action through the cookie behind `weak`, with a strong reference that ends here.
    static func freeThroughWeak(_ controller: IRQController, _ irq: IRQNumber, _ weak: WeakCookie) throws -> String? {
        guard let cookie = weak.cookie else { return nil }
        return try controller.freeIRQ(irq, devID: cookie)
    }

    /// The action keeps its temporary cookie alive, so 2,000 new cookies (each freed right
    /// after its try) never get its address, and `freeIRQ` with any of them throws
    /// `alreadyFree` while the action keeps handling interrupts. Freeing with the original
    /// cookie (reached through the weak reference) frees it, and the cookie then goes.
    /// Old code: the action kept only an ObjectIdentifier, so the weak reference went nil at
    /// once and a new cookie allocated at the same address freed the action.
    @Test func aTemporaryCookieCannotBeImpersonatedWhileItsActionLives() throws {
        let log = KernelLog(name: "devid")
        let controller = try IRQController(name: "devid", log: log)
        defer { controller.shutdown() }
        let irq = try controller.addSoftwareLine()
        let hits = Hits()
        let tries = 2_000
        struct Outcome: Sendable {
            var aliveAfterRequest = false, sameAddress = 0, errors: [IRQError?] = [], hitsAfter = 0
            var freed: String?, goneAfterFree = false
        }
        let result = try onThread(timeout: .seconds(60)) { () -> Outcome in
            var outcome = Outcome()
            let weak = try Self.requestWithTemporaryCookie(controller, irq, hits: hits)
            outcome.aliveAfterRequest = weak.cookie != nil
            let original = Self.identity(weak)
            for i in 0..<tries {
                do {
                    let impostor = Cookie("impostor \(i)")
                    if ObjectIdentifier(impostor) == original { outcome.sameAddress += 1 }
                    outcome.errors.append(caught(IRQError.self) { try controller.freeIRQ(irq, devID: impostor) })
                }
                if i % 500 == 0 { try controller.raiseAndQuiesce(irq) }
            }
            try controller.raiseAndQuiesce(irq, times: 3)
            outcome.hitsAfter = hits.value
            outcome.freed = try Self.freeThroughWeak(controller, irq, weak)
            // The freed action's old list goes after a grace period: wait for its callbacks.
            try RCU.barrier()
            outcome.goneAfterFree = weak.cookie == nil
            return outcome
        }
        #expect(result.aliveAfterRequest, "the action keeps its cookie alive")
        #expect(result.sameAddress == 0, "no new cookie got the live cookie's address")
        #expect(result.errors.count == tries)
        #expect(result.errors.allSatisfy { $0 == .alreadyFree(irq: irq) }, "every impostor's free was refused")
        #expect(result.hitsAfter == 4 + 3, "the action kept handling interrupts")
        #expect(result.freed == "temporary", "the original identity freed it")
        #expect(result.goneAfterFree, "once freed, nothing keeps the cookie")
        #expect(log.reportCount(.warning) == tries, "each impostor's free warned")
        #expect(log.reports.last?.headline == "WARNING: Trying to free already-free IRQ \(irq)")
        #expect(try controller.stats(irq).actions.isEmpty)
    }
}
