import BrokerState
import CoreMetrics
import EnvironmentModel
internal import RabbitManagement

/// The metrics provisioning's operations report through swift-metrics (each broker call's are
/// `BrokerCallMetrics`). The executable chooses the backend (Prometheus); without one they
/// cost next to nothing.
enum ProvisioningMetrics {
    /// Whole operations: create, delete, reconcile, with their outcome.
    static func operation(_ name: String, outcome: String, since start: ContinuousClock.Instant) {
        Timer(label: "warren_provisioning_duration_seconds", dimensions: [("operation", name), ("outcome", outcome)])
            .recordNanoseconds(BrokerCallMetrics.nanoseconds(since: start))
    }

    /// Environments on the broker, as the janitor last counted them.
    static func environments(_ count: Int) {
        Gauge(label: "warren_environments").record(count)
    }

    /// The broker's alarms and resources per node, and each team's use beside its ceilings
    /// (see `UsageCollector`). Labels come from closed sets: node names are the operator's
    /// cluster, resources are `memory` and `disk`, and teams are those of environment vhosts,
    /// which only Warren makes, for teams of its tokens and platforms files. A node or team
    /// gone since the last round has its series removed, so they do not pile up.
    static func usage(_ usage: Usage, previous: Usage?) {
        for node in usage.nodes {
            for (gauge, value) in nodeGauges(node.name) {
                if let value = value(node) { gauge.record(value) }
            }
        }
        for (team, use) in usage.teams {
            for (gauge, value) in teamGauges(team) { gauge.record(value(use)) }
        }
        let nodes = Set(usage.nodes.map(\.name))
        for node in previous?.nodes ?? [] where !nodes.contains(node.name) {
            for (gauge, _) in nodeGauges(node.name) { gauge.destroy() }
        }
        for team in (previous?.teams ?? [:]).keys where usage.teams[team] == nil {
            for (gauge, _) in teamGauges(team) { gauge.destroy() }
        }
    }

    private static func nodeGauges(_ node: String) -> [(Gauge, @Sendable (NodeInfo) -> Int?)] {
        [
            (Gauge(label: "warren_broker_alarm", dimensions: [("node", node), ("resource", "memory")]), { $0.memoryAlarm ? 1 : 0 }),
            (Gauge(label: "warren_broker_alarm", dimensions: [("node", node), ("resource", "disk")]), { $0.diskAlarm ? 1 : 0 }),
            (Gauge(label: "warren_broker_memory_used_bytes", dimensions: [("node", node)]), { $0.memoryUsed }),
            (Gauge(label: "warren_broker_memory_limit_bytes", dimensions: [("node", node)]), { $0.memoryLimit }),
            (Gauge(label: "warren_broker_disk_free_bytes", dimensions: [("node", node)]), { $0.diskFree }),
            (Gauge(label: "warren_broker_disk_free_limit_bytes", dimensions: [("node", node)]), { $0.diskFreeLimit }),
        ]
    }

    private static func teamGauges(_ team: String) -> [(Gauge, @Sendable (Usage.Team) -> Int)] {
        let values: [(String, @Sendable (Usage.Team) -> Int)] = [
            ("warren_team_environments", { $0.environments }),
            ("warren_team_connections", { $0.connections }), ("warren_team_connections_ceiling", { $0.connectionsCeiling }),
            ("warren_team_queues", { $0.queues }), ("warren_team_queues_ceiling", { $0.queuesCeiling }),
            ("warren_team_message_bytes", { $0.messageBytes }), ("warren_team_message_bytes_ceiling", { $0.messageBytesCeiling }),
            ("warren_team_users", { $0.users }), ("warren_team_users_ceiling", { $0.usersCeiling }),
        ]
        return values.map { (Gauge(label: $0.0, dimensions: [("team", team)]), $0.1) }
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
