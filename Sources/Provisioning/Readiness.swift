import BrokerState
import EnvironmentModel
internal import RabbitManagement

/// A resource alarm a broker node has raised: while it lasts the broker blocks every
/// publishing connection, every team's included.
public struct BrokerAlarm: Sendable, Hashable, CustomStringConvertible {
    public var node: String
    /// "memory" or "disk".
    public var resource: String

    public init(node: String, resource: String) {
        self.node = node
        self.resource = resource
    }

    public var description: String { "\(resource) alarm on node \(node)" }

    static func of(_ nodes: [NodeInfo]) -> [BrokerAlarm] {
        nodes.flatMap { node in
            (node.memoryAlarm ? [BrokerAlarm(node: node.name, resource: "memory")] : [])
                + (node.diskAlarm ? [BrokerAlarm(node: node.name, resource: "disk")] : [])
        }
    }
}

/// What a readiness probe learns of the broker: its release, and the alarms in force.
public struct Readiness: Sendable, Equatable {
    public var rabbitmqVersion: String
    public var alarms: [BrokerAlarm]
}

extension Provisioner {
    /// The broker's version and alarms when the management API answers and Warren's
    /// credential has the administrator tag (management or policymaker alone cannot create
    /// vhosts and users); an error otherwise. An alarm does not make Warren unready: while it
    /// lasts the broker blocks publishers, but Warren can still administer it, and teams need
    /// exactly that (a `DELETE ?force=true` that frees the node) then; a probe that took
    /// every Warren out of service during an alarm would refuse them. The alarms are read now,
    /// not from `UsageCollector`'s last round: one call listing a row per node, and a
    /// readiness probe must not answer from numbers up to an interval old.
    public func readiness() async throws -> Readiness {
        async let whoami = step("check credential") { try await admin.whoami() }
        async let overview = step("read overview") { try await admin.overview() }
        async let nodes = step("read nodes") { try await admin.nodes() }
        guard try await whoami.tags.contains("administrator") else {
            throw ProvisioningError(code: .broker, detail: "Warren's management user lacks the administrator tag")
        }
        return Readiness(rabbitmqVersion: try await overview.rabbitmqVersion, alarms: BrokerAlarm.of(try await nodes))
    }
}
