import FoundationEssentials
import RabbitManagement

/// Rotation: new credentials while the old ones keep working, and revocation now or later.
public struct RotationResult: Sendable {
    public var environment: Environment
    public var credentials: IssuedCredentials
    /// Users due to be revoked, with when (RFC 3339), after this call.
    public var revocations: [String: String]
}

extension Provisioner {
    /// Issues a new set of credentials with `role`. With `revokeOthersAfter`, every other user
    /// of the same role is scheduled for revocation that much later (zero: now); connections
    /// already open are not cut by the issue itself, only by a revocation the caller asked for.
    /// Nil when the environment does not exist.
    public func issueCredentials(team: String, name: String, role: Role, revokeOthersAfter: Duration?) async throws -> RotationResult? {
        guard let (environment, record) = try await load(team: team, name: name) else { return nil }
        let vhost = environment.vhost
        let issued = IssuedCredentials(username: EnvironmentNaming.newUserName(vhost: vhost), password: PasswordGenerator.make(), role: role)
        do {
            try await makeUser(issued, for: environment)
        } catch {
            await rollBack(vhost: nil, users: [issued.username])
            throw error
        }
        var revocations = record.revocations
        if let delay = revokeOthersAfter {
            let others = try await step("read permissions") { try await admin.permissions(vhost: vhost) }
                .filter { EnvironmentNaming.isUser($0.user, of: vhost) && $0.user != issued.username && Role.of($0) == role }
                .map(\.user)
            if delay <= .zero {
                for user in others { _ = try await step("revoke user") { try await admin.deleteUser(user) } }
            } else {
                let at = (Date.now + Double(delay.components.seconds)).formatted(.iso8601)
                for user in others { revocations[user] = at }
                var updated = record
                updated.revocations = revocations
                try await write(updated, to: vhost, step: "schedule revocation")
            }
        }
        logger.info("credentials issued", metadata: ["vhost": "\(vhost)", "user": "\(issued.username)", "role": "\(role.rawValue)"])
        return RotationResult(environment: environment, credentials: issued, revocations: revocations)
    }

    /// Deletes one of the environment's users now. False when it is not one of them.
    public func revokeCredentials(team: String, name: String, username: String) async throws -> Bool? {
        guard let (environment, record) = try await load(team: team, name: name) else { return nil }
        guard EnvironmentNaming.isUser(username, of: environment.vhost) else { return false }
        let deleted = try await step("revoke user") { try await admin.deleteUser(username) }
        if record.revocations[username] != nil {
            var updated = record
            updated.revocations[username] = nil
            try await write(updated, to: environment.vhost, step: "clear revocation")
        }
        logger.info("credentials revoked", metadata: ["vhost": "\(environment.vhost)", "user": "\(username)"])
        return deleted
    }

    /// Revokes the users of `record` whose time has come (the janitor calls this). Returns how many.
    func revokeDue(_ record: EnvironmentRecord, vhost: String, now: Date = .now) async throws -> Int {
        let due = record.revocations.filter { _, at in
            guard let time = try? Date(at, strategy: .iso8601) else { return true }
            return time <= now
        }
        guard !due.isEmpty else { return 0 }
        for user in due.keys { _ = try await step("revoke user") { try await admin.deleteUser(user) } }
        // Re-read right before the write, so a change made since the sweep's listing survives.
        guard let info = try await step("read vhost", { try await admin.vhost(vhost) }),
              var fresh = EnvironmentRecord.decode(description: info.description)
        else { return due.count }
        for user in due.keys { fresh.revocations[user] = nil }
        try await write(fresh, to: vhost, step: "clear revocation")
        return due.count
    }
}
