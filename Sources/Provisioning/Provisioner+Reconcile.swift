import RabbitManagement

/// What a repair returns: the environment as it is afterwards, and credentials when none of
/// its users was left and a new one had to be made.
public struct ReconcileResult: Sendable {
    public var health: EnvironmentHealth
    public var credentials: IssuedCredentials?
}

extension Provisioner {
    /// Restores whatever of the environment is missing (exchanges, queues, bindings, limits,
    /// Warren's own permissions) from the record on the broker. Users that still exist are left
    /// as they are, so their credentials keep working; only when none is left is a new one
    /// made. Nil when the environment does not exist.
    public func reconcile(team: String, name: String) async throws -> ReconcileResult? {
        try await measured("reconcile") { try await repair(team: team, name: name) }
    }

    private func repair(team: String, name: String) async throws -> ReconcileResult? {
        guard let (environment, record) = try await load(team: team, name: name) else { return nil }
        let vhost = environment.vhost
        var ownsVhost = false
        try await prepare(environment, record: record, ownsVhost: &ownsVhost)
        try await declareTopology(environment)

        var credentials: IssuedCredentials?
        let users = try await step("read permissions") { try await admin.permissions(vhost: vhost) }
        if !users.contains(where: { EnvironmentNaming.isUser($0.user, of: vhost) }) {
            let issued = IssuedCredentials(username: EnvironmentNaming.newUserName(vhost: vhost), password: PasswordGenerator.make())
            do {
                try await makeUser(issued, for: environment)
            } catch {
                await rollBack(vhost: nil, users: [issued.username])
                throw error
            }
            credentials = issued
        }
        if record.state != .ready {
            var ready = record
            ready.state = .ready
            try await write(ready, to: vhost, step: "mark ready")
        }
        logger.info("environment reconciled", metadata: ["vhost": "\(vhost)", "new_user": "\(credentials?.username ?? "-")"])
        guard let health = try await inspect(team: team, name: name) else { return nil }
        return ReconcileResult(health: health, credentials: credentials)
    }
}
