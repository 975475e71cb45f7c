import CoreMetrics
import EnvironmentModel

/// What each management API call reports through swift-metrics: its duration and its failures,
/// by provisioning step ("declare queue"). `BrokerSession.step` records them.
package enum BrokerCallMetrics {
    /// Each management API call by provisioning step, successful or not.
    static func brokerCall(step: String, since start: ContinuousClock.Instant) {
        Timer(label: "warren_broker_call_duration_seconds", dimensions: [("step", step)])
            .recordNanoseconds(nanoseconds(since: start))
    }

    /// Failed management API calls by kind of failure ("unreachable", "brokerFailure", ...).
    static func brokerError(step: String, kind: String) {
        Counter(label: "warren_broker_errors_total", dimensions: [("step", step), ("kind", kind)]).increment()
    }

    package static func nanoseconds(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = (ContinuousClock.now - start).components
        return elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000
    }
}
