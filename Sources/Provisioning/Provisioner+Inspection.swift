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

    /// The environment and which of its parts exist on the broker; nil when it does not exist.
    public func inspect(team: String, name: String) async throws -> EnvironmentHealth? {
        let vhost = EnvironmentNaming.vhost(team: team, name: name)
        guard let info = try await step("read vhost", { try await admin.vhost(vhost) }),
              let record = EnvironmentRecord.decode(description: info.description), record.team == team
        else { return nil }
        let environment = Environment(record: record, vhost: vhost)
        let spec = environment.spec
        async let exchange = step("read exchange") { try await admin.exchange(vhost: vhost, name: spec.exchange.name) }
        async let queue = step("read queue") { try await admin.queue(vhost: vhost, name: spec.queue.name) }
        async let bindings = step("read bindings") {
            try await admin.bindings(vhost: vhost, exchange: spec.exchange.name, queue: spec.queue.name)
        }
        async let permissions = step("read permissions") { try await admin.permissions(vhost: vhost) }
        let users = try await permissions.map(\.user).filter { EnvironmentNaming.isUser($0, of: vhost) }.sorted()
        let resources = EnvironmentHealth.Resources(
            exchange: try await exchange != nil,
            queue: try await queue != nil,
            binding: try await bindings.contains { $0.routingKey == spec.routingKey },
            user: !users.isEmpty)
        return EnvironmentHealth(environment: environment, users: users, resources: resources)
    }
}
