import BrokerState
import EnvironmentModel
import Locking
internal import RabbitManagement

/// What the broker's nodes and each team use, against the ceilings: what `/metrics` shows so
/// that operators see a neighbour coming before the broker raises an alarm.
public struct Usage: Sendable, Hashable {
    /// One team's use, summed over its environments, and its ceilings' total (environments
    /// times each per-environment ceiling).
    public struct Team: Sendable, Hashable {
        public var environments = 0
        public var connections = 0
        public var queues = 0
        public var messageBytes = 0
        public var users = 0
        public var connectionsCeiling = 0
        public var queuesCeiling = 0
        public var messageBytesCeiling = 0
        public var usersCeiling = 0

        public init() {}
    }

    var nodes: [NodeInfo]
    public var teams: [String: Team]

    init(nodes: [NodeInfo] = [], teams: [String: Team] = [:]) {
        self.nodes = nodes
        self.teams = teams
    }

    /// Sums the listings per team. Environments are the vhosts the queue and connection
    /// listings name (every environment holds its claim queue, so the queue listing names
    /// each one); users count towards an environment by their name (`EnvironmentNaming`), and
    /// users whose vhost is gone count nowhere.
    static func of(
        nodes: [NodeInfo], queues: [String: QueueTotals], connections: [String: Int], users: [UserInfo], ceilings: Ceilings
    ) -> Usage {
        var usersPerVhost: [String: Int] = [:]
        for user in users {
            if let vhost = EnvironmentNaming.vhost(ofUser: user.name) { usersPerVhost[vhost, default: 0] += 1 }
        }
        var teams: [String: Team] = [:]
        for vhost in Set(queues.keys).union(connections.keys) {
            guard let (team, _) = EnvironmentNaming.parse(vhost: vhost) else { continue }
            var usage = teams[team] ?? Team()
            usage.environments += 1
            usage.connections += connections[vhost] ?? 0
            usage.queues += queues[vhost]?.queues ?? 0
            usage.messageBytes += queues[vhost]?.messageBytes ?? 0
            usage.users += usersPerVhost[vhost] ?? 0
            usage.connectionsCeiling += ceilings.connections
            usage.queuesCeiling += ceilings.queues
            usage.messageBytesCeiling += ceilings.environmentBytes
            usage.usersCeiling += ceilings.users
            teams[team] = usage
        }
        return Usage(nodes: nodes, teams: teams)
    }
}

/// Gathers `Usage` in a task of its own, every interval, and records it as gauges; never per
/// request (each round reads four whole-broker listings). Kept apart from the janitor, so a
/// slow or failing sweep does not stall the numbers and the other way round. A round that
/// fails is logged and changes nothing: the last values stay.
///
/// One call per listing and round: nodes (one row per node), queues and connections (one
/// row each, a few columns) and users. Users come from the listing of user limits, counted per
/// environment by name: every user Warren makes has its limits (see `Ceilings`), so that one
/// call grows with Warren's users (at most `Ceilings.users` per environment), not with every
/// user on the broker, and the permissions would take one call per environment every round.
public final class UsageCollector: Sendable {
    let provisioner: Provisioner
    private let last = PThreadMutex<Usage?>(nil)

    public init(provisioner: Provisioner) {
        self.provisioner = provisioner
    }

    /// The last round's usage; nil before the first round succeeded.
    public var latest: Usage? { last.withLock { $0 } }

    /// One round: reads the listings at once, records the gauges and keeps the result.
    @discardableResult
    public func collect() async throws -> Usage {
        let admin = provisioner.admin
        async let nodes = provisioner.step("read nodes") { try await admin.nodes() }
        async let queues = provisioner.step("list queues") { try await admin.queueTotals() }
        async let connections = provisioner.step("list connections") { try await admin.connectionCounts() }
        async let users = provisioner.step("list user limits") { try await admin.userLimits().keys.map { UserInfo(name: $0) } }
        let usage = Usage.of(
            nodes: try await nodes, queues: try await queues, connections: try await connections, users: try await users,
            ceilings: provisioner.ceilings)
        let previous = last.withLock { last in
            defer { last = usage }
            return last
        }
        ProvisioningMetrics.usage(usage, previous: previous)
        return usage
    }

    public func run(every interval: Duration) async {
        while !Task.isCancelled {
            do {
                try await collect()
            } catch {
                provisioner.logger.warning("usage not collected; the last values stay", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}
