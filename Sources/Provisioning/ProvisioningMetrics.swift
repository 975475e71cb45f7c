import CoreMetrics

/// The metrics provisioning reports through swift-metrics. The executable chooses the backend
/// (Prometheus); without one they cost next to nothing.
enum ProvisioningMetrics {
    /// Each management API call by provisioning step ("declare queue"), successful or not.
    static func brokerCall(step: String, since start: ContinuousClock.Instant) {
        Timer(label: "warren_broker_call_duration_seconds", dimensions: [("step", step)])
            .recordNanoseconds(nanoseconds(since: start))
    }

    /// Failed management API calls by kind of failure ("unreachable", "brokerFailure", ...).
    static func brokerError(step: String, kind: String) {
        Counter(label: "warren_broker_errors_total", dimensions: [("step", step), ("kind", kind)]).increment()
    }

    /// Whole operations: create, delete, reconcile, with their outcome.
    static func operation(_ name: String, outcome: String, since start: ContinuousClock.Instant) {
        Timer(label: "warren_provisioning_duration_seconds", dimensions: [("operation", name), ("outcome", outcome)])
            .recordNanoseconds(nanoseconds(since: start))
    }

    /// Environments on the broker, as the janitor last counted them.
    static func environments(_ count: Int) {
        Gauge(label: "warren_environments").record(count)
    }

    private static func nanoseconds(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = (ContinuousClock.now - start).components
        return elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000
    }
}

extension Provisioner {
    /// Times a whole operation and counts its outcome.
    func measured<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            ProvisioningMetrics.operation(operation, outcome: "ok", since: start)
            return result
        } catch {
            ProvisioningMetrics.operation(operation, outcome: "error", since: start)
            throw error
        }
    }
}
