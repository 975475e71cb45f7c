import BrokerState
import EnvironmentModel
internal import RabbitManagement

/// What a repair returns: the environment as it is afterwards, and credentials when none of
/// its users was left and a new one had to be made.
public struct ReconcileResult: Sendable {
    public var health: EnvironmentHealth
    public var credentials: IssuedCredentials?
}

extension Provisioner {
    /// Restores whatever of the environment is missing (exchanges, queues, bindings, limits,
    /// Warren's own permissions, and on RabbitMQ 4.1 and later the broker's deletion protection
    /// of a protected environment) from the record on the broker. Users that still exist are left
    /// as they are, so their credentials keep working; only when none is left is a new one
    /// made. Nil when the environment does not exist.
    public func reconcile(team: String, name: String) async throws -> ReconcileResult? {
        try await measured("reconcile") { try await repair(team: team, name: name) }
    }

    private func repair(team: String, name: String) async throws -> ReconcileResult? {
        guard let (environment, record) = try await loadForChange(team: team, name: name) else { return nil }
        return try await whileItExists(environment, incarnation: record.incarnation) {
            try await restore(environment, record: record)
        }
    }

    private func restore(_ environment: Environment, record: EnvironmentRecord) async throws -> ReconcileResult? {
        let vhost = environment.vhost
        var ownsVhost = false
        let holder = try await prepare(vhost, record: record, ownsVhost: &ownsVhost)
        guard holder.incarnation == record.incarnation else { throw ProvisioningError.replaced(environment.name) }
        try await declareTopology(environment)
        if record.spec.protected {
            // The broker's half of the protection, lifted on the broker or never put in place
            // (a protect whose broker call failed): the record says protected, so it goes back.
            try await records.applyBrokerProtection(vhost, incarnation: record.incarnation, brokerEnforces: try await brokerProtectsVhosts())
        }

        var credentials: IssuedCredentials?
        let users = try await step("read permissions") { try await admin.permissions(vhost: vhost) }
            .filter { EnvironmentNaming.isUser($0.user, of: vhost) }
        // Full users granted before Warren kept its own names out of tenants' reach get the
        // permissions full users get now.
        for user in users where Role.of(user) == .full && user.configure != Role.full.permissions(for: environment.spec).configure {
            try await grant(.full, to: user.user, in: environment)
        }
        if users.isEmpty {
            let issued = IssuedCredentials(
                username: EnvironmentNaming.newUserName(vhost: vhost, incarnation: record.incarnation), password: PasswordGenerator.make())
            do {
                try await makeUser(issued, for: environment)
            } catch {
                await rollBack(vhost: vhost, incarnation: nil, users: [issued.username])
                throw error
            }
            credentials = issued
        }
        if record.state != .ready {
            try await records.change(vhost, incarnation: record.incarnation, step: "mark ready") { $0.state = .ready }
        }
        logger.info("environment reconciled", metadata: ["vhost": "\(vhost)", "new_user": "\(credentials?.username ?? "-")"])
        guard let health = try await inspect(team: environment.team, name: environment.name) else { return nil }
        return ReconcileResult(health: health, credentials: credentials)
    }
}
