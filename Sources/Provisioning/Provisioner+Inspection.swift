import RabbitManagement

extension Provisioner {
    /// The team's environments, by name.
    public func list(team: String) async throws -> [Environment] {
        let prefix = EnvironmentNaming.teamPrefix(team)
        return try await step("list vhosts") { try await admin.vhosts() }
            .filter { $0.name.hasPrefix(prefix) }
            .compactMap { info in
                guard let record = EnvironmentRecord.decode(description: info.description), record.team == team else { return nil }
                return Environment(record: record, vhost: info.name)
            }
            .sorted { $0.name < $1.name }
    }

    /// The environment and its record, or nil when there is no such environment of the team.
    func load(team: String, name: String) async throws -> (Environment, EnvironmentRecord)? {
        let vhost = EnvironmentNaming.vhost(team: team, name: name)
        guard let info = try await step("read vhost", { try await admin.vhost(vhost) }),
              let record = EnvironmentRecord.decode(description: info.description), record.team == team
        else { return nil }
        return (Environment(record: record, vhost: vhost), record)
    }

    /// The environment and which of its parts exist on the broker; nil when it does not exist.
    public func inspect(team: String, name: String) async throws -> EnvironmentHealth? {
        guard let (environment, record) = try await load(team: team, name: name) else { return nil }
        let vhost = environment.vhost
        let topology = Topology(environment.spec)
        async let exchanges = allExist(topology.exchanges.map { exchange in
            { try await step("read exchange") { try await admin.exchange(vhost: vhost, name: exchange.name) } != nil }
        })
        async let queues = allExist(topology.queues.map { queue in
            { try await step("read queue") { try await admin.queue(vhost: vhost, name: queue.name) } != nil }
        })
        async let bindings = allExist(topology.bindings.map { binding in
            {
                try await step("read bindings") {
                    try await admin.bindings(vhost: vhost, exchange: binding.exchange, queue: binding.queue)
                }.contains { $0.routingKey == binding.routingKey }
            }
        })
        async let permissions = step("read permissions") { try await admin.permissions(vhost: vhost) }
        let users = try await permissions
            .filter { EnvironmentNaming.isUser($0.user, of: vhost) }
            .map { (name: $0.user, role: Role.of($0)) }
            .sorted { $0.name < $1.name }
        let resources = EnvironmentHealth.Resources(
            exchange: try await exchanges, queue: try await queues, binding: try await bindings, user: !users.isEmpty)
        return EnvironmentHealth(
            environment: environment, users: users, resources: resources, revocations: record.revocations, state: record.state)
    }

    /// Whether every check answers true; they run at once. A missing exchange or queue makes
    /// its bindings' read a 404, which counts as absent.
    private func allExist(_ checks: [@Sendable () async throws -> Bool]) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for check in checks {
                group.addTask {
                    do {
                        return try await check()
                    } catch let error as ProvisioningError where error.underlying?.code == .notFound {
                        return false
                    }
                }
            }
            var all = true
            for try await exists in group { all = all && exists }
            return all
        }
    }
}
