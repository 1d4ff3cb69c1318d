/// The reads-per-unbind ratio above which an RCU Devres costs less in total than a mutex
/// Devres: RCU reads are cheaper, its unbind may be dearer (a grace period).
struct Crossover: Codable {
    /// With batched unbind (one grace period for the device).
    let reads_per_unbind: Double
    /// The same from the ends of the two unbind ranges (slowest batched, fastest mutex
    /// repetition): how far the spread could move it.
    let reads_per_unbind_worst: Double
    /// With per-object unbind (one grace period per Devres, as the kernel does today).
    let reads_per_unbind_per_object: Double
    let rcu_ns_per_read: Double
    let mutex_ns_per_read: Double
    let rcu_batched_ns_per_object_unbind: Double
    let rcu_per_object_ns_per_object_unbind: Double
    let mutex_ns_per_object_unbind: Double
    let explanation: String

    /// From the sweep's no-writer rows (2 readers: the cost of a read on a reader thread)
    /// and the unbind rows for the largest N (the cost of releasing one Devres): RCU wins
    /// once `reads × (mutex − rcu per read) > (rcu − mutex per-Devres unbind)`; 0 when its
    /// unbind is not dearer at all.
    static func derive(read: [SweepRow], unbind: [UnbindRow]) -> Crossover? {
        guard let rcu = read.first(where: { $0.strategy == "rcu" && $0.writer_target_per_s == 0 }),
              let mutex = read.first(where: { $0.strategy == "mutex" && $0.writer_target_per_s == 0 }),
              let n = unbind.map(\.objects).max(),
              let batched = unbind.first(where: { $0.strategy == "rcu-batched" && $0.objects == n }),
              let perObject = unbind.first(where: { $0.strategy == "rcu-per-object" && $0.objects == n }),
              let mutexUnbind = unbind.first(where: { $0.strategy == "mutex" && $0.objects == n })
        else { return nil }
        let rcuRead = 2e9 / rcu.ops_per_s
        let mutexRead = 2e9 / mutex.ops_per_s
        let batchedUnbind = batched.seconds * 1e9 / Double(n)
        let perObjectUnbind = perObject.seconds * 1e9 / Double(n)
        let mutexPerObject = mutexUnbind.seconds * 1e9 / Double(n)
        let saved = mutexRead - rcuRead
        func ratio(_ rcuUnbind: Double) -> Double { max(0, (rcuUnbind - mutexPerObject) / saved) }
        let batchedRatio = ratio(batchedUnbind), perObjectRatio = ratio(perObjectUnbind)
        let worst = max(0, (batched.seconds_max - mutexUnbind.seconds_min) * 1e9 / Double(n) / saved)
        func clause(_ r: Double, _ unbind: Double) -> String {
            r == 0
                ? "at any read count (its unbind, \(fmt(unbind, 0)) ns per Devres, is not dearer than the mutex's \(fmt(mutexPerObject, 0)) ns)"
                : "once a Devres is read more than \(fmt(r, 1)) times per unbind ((\(fmt(unbind, 0)) − \(fmt(mutexPerObject, 0))) ns ÷ \(fmt(saved, 2)) ns)"
        }
        let text = """
            an RCU Devres costs less in total than a mutex Devres with batched unbind \(clause(batchedRatio, batchedUnbind)) \
            (\(fmt(worst, 1)) reads from the ends of the two unbind ranges); \
            with per-object unbind \(clause(perObjectRatio, perObjectUnbind)). \
            Per read: mutex \(fmt(mutexRead, 2)) ns, rcu \(fmt(rcuRead, 2)) ns (2 readers, no writer); unbind rows N=\(n).
            """
        return Crossover(
            reads_per_unbind: batchedRatio, reads_per_unbind_worst: worst, reads_per_unbind_per_object: perObjectRatio, rcu_ns_per_read: rcuRead,
            mutex_ns_per_read: mutexRead, rcu_batched_ns_per_object_unbind: batchedUnbind,
            rcu_per_object_ns_per_object_unbind: perObjectUnbind, mutex_ns_per_object_unbind: mutexPerObject,
            explanation: text)
    }
}
