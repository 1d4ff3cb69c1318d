/// The reads-per-unbind ratio above which an RCU Devres costs less in total than a mutex
/// Devres: RCU reads are cheaper, its unbind dearer (a grace period).
struct Crossover: Codable {
    let reads_per_unbind: Double
    let rcu_ns_per_read: Double
    let mutex_ns_per_read: Double
    let rcu_ns_per_object_unbind: Double
    let mutex_ns_per_object_unbind: Double
    let explanation: String

    /// From the sweep's no-writer rows (2 readers: per-read cost on a reader thread) and the
    /// unbind rows for the largest N (per-object cost of a batched RCU unbind and of a mutex
    /// unbind): RCU wins once `reads × (mutex − rcu per read) > unbind cost difference`.
    static func derive(read: [SweepRow], unbind: [UnbindRow]) -> Crossover? {
        guard let rcu = read.first(where: { $0.strategy == "rcu" && $0.writer_target_per_s == 0 }),
              let mutex = read.first(where: { $0.strategy == "mutex" && $0.writer_target_per_s == 0 }),
              let n = unbind.map(\.objects).max(),
              let rcuUnbind = unbind.first(where: { $0.strategy == "rcu-batched" && $0.objects == n }),
              let mutexUnbind = unbind.first(where: { $0.strategy == "mutex" && $0.objects == n })
        else { return nil }
        let rcuRead = 2e9 / rcu.ops_per_s
        let mutexRead = 2e9 / mutex.ops_per_s
        let rcuPerObject = rcuUnbind.seconds * 1e9 / Double(n)
        let mutexPerObject = mutexUnbind.seconds * 1e9 / Double(n)
        let ratio = max(0, (rcuPerObject - mutexPerObject) / (mutexRead - rcuRead))
        let text = """
            RCU Devres costs less in total once a Devres is read more than \(fmt(ratio, 2)) times per unbind: \
            (unbind per Devres, rcu-batched \(fmt(rcuPerObject, 0)) ns − mutex \(fmt(mutexPerObject, 0)) ns, N=\(n)) \
            ÷ (read, mutex \(fmt(mutexRead, 2)) ns − rcu \(fmt(rcuRead, 2)) ns, 2 readers, no writer)
            """
        return Crossover(
            reads_per_unbind: ratio, rcu_ns_per_read: rcuRead, mutex_ns_per_read: mutexRead,
            rcu_ns_per_object_unbind: rcuPerObject, mutex_ns_per_object_unbind: mutexPerObject, explanation: text)
    }
}
