import RabbitManagement

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

extension Provisioner {
    /// The broker's version when the management API answers, Warren's credential has the
    /// administrator tag (management or policymaker alone cannot create vhosts and users) and
    /// no node is in a resource alarm. The alarms are read now, not from `UsageCollector`'s
    /// last round: one call listing a row per node, and a readiness probe must not answer from
    /// numbers up to an interval old.
    public func readiness() async throws -> String {
        async let whoami = step("check credential") { try await admin.whoami() }
        async let overview = step("read overview") { try await admin.overview() }
        async let nodes = step("read nodes") { try await admin.nodes() }
        guard try await whoami.tags.contains("administrator") else {
            throw ProvisioningError(code: .broker, detail: "Warren's management user lacks the administrator tag")
        }
        let alarms = BrokerAlarm.of(try await nodes)
        guard alarms.isEmpty else {
            throw ProvisioningError(
                code: .broker,
                detail: "the broker is in \(alarms.map(\.description).joined(separator: ", ")); it blocks every publisher until that clears")
        }
        return try await overview.rabbitmqVersion
    }
}
