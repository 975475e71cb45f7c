import BrokerState
import EnvironmentModel
import FoundationEssentials
internal import RabbitManagement

/// Rotation: new credentials while the old ones keep working, and revocation now or later.
public struct RotationResult: Sendable {
    public var environment: Environment
    public var credentials: IssuedCredentials
    /// Users due to be revoked, with when (RFC 3339), after this call.
    public var revocations: [String: String]
}

extension Provisioner {
    /// Issues a new set of credentials with `role`. With `revokeOthersAfter`, every other user
    /// of the same role that held permissions when this call began is scheduled for revocation
    /// that much later (zero: now): two rotations at once never revoke each other's new user.
    /// Connections already open are not cut by the issue itself, only by a revocation the
    /// caller asked for. Nil when the environment does not exist.
    public func issueCredentials(team: String, name: String, role: Role, revokeOthersAfter: Duration?) async throws -> RotationResult? {
        try takeRotation(team: team)
        guard let (environment, record) = try await loadForChange(team: team, name: name) else { return nil }
        return try await whileItExists(environment, incarnation: record.incarnation) {
            try await issue(role, in: environment, record: record, revokeOthersAfter: revokeOthersAfter)
        }
    }

    private func issue(_ role: Role, in environment: Environment, record: EnvironmentRecord, revokeOthersAfter: Duration?) async throws -> RotationResult {
        let vhost = environment.vhost
        if case .agent(let name) = role, !environment.spec.agents.contains(where: { $0.name == name }) {
            throw ProvisioningError(
                code: .invalidField, detail: "environment \(environment.name) has no agent \(name)", fields: ["role"],
                fieldReason: "must be full, producer, consumer or one of the environment's agents (\(environment.spec.agents.map(\.name).joined(separator: ", ")))")
        }
        func othersOfRole(_ permissions: [PermissionInfo]) -> [String] {
            guard revokeOthersAfter != nil else { return [] }
            return permissions.filter { EnvironmentNaming.isUser($0.user, of: vhost) && Role.of($0) == role }.map(\.user)
        }
        // Users revoked at once make room for the new one; those revoked later still count.
        let revokedAtOnce = revokeOthersAfter.map { $0 <= .zero } ?? false
        let issued = IssuedCredentials(
            username: EnvironmentNaming.newUserName(vhost: vhost, incarnation: record.incarnation), password: PasswordGenerator.make(), role: role)
        // The others are taken before the new user exists, so a rotation running beside this
        // one, whose user appears later, is not among them.
        let others = try await withRoomForUsers(in: environment, leaving: { revokedAtOnce ? othersOfRole($0).count : 0 }) { permissions in
            do {
                try await makeUser(issued, for: environment)
            } catch {
                await rollBack(vhost: vhost, incarnation: nil, users: [issued.username])
                throw error
            }
            return othersOfRole(permissions)
        }
        var revocations = record.revocations
        if let delay = revokeOthersAfter {
            if delay <= .zero {
                for user in others { _ = try await step("revoke user") { try await admin.deleteUser(user) } }
            } else {
                let at = (Date.now + Double(delay.components.seconds)).formatted(.iso8601)
                // Only users of this incarnation can be scheduled (the record's check says so).
                let scheduled = others.filter { EnvironmentNaming.isUser($0, of: vhost, incarnation: record.incarnation) }
                revocations = try await records.change(vhost, incarnation: record.incarnation, step: "schedule revocation") {
                    for user in scheduled { $0.revocations[user] = at }
                }.revocations
            }
        }
        logger.info("credentials issued", metadata: ["vhost": "\(vhost)", "user": "\(issued.username)", "role": "\(role.name)"])
        return RotationResult(environment: environment, credentials: issued, revocations: revocations)
    }

    /// One issue of credentials from the team's budget (see `TeamBudget`), or `rateLimited`.
    func takeRotation(team: String) throws {
        try rotations.take(team: team, doing: "issues credentials")
    }

    /// One request that reads the broker (a GET of environments, queue depths, a KEDA
    /// manifest) from the team's budget, or `rateLimited`: a team polling in a tight loop
    /// spends its own budget, not the management API's capacity that every team shares.
    public func takeRead(team: String) throws {
        try reads.take(team: team, doing: "reads its environments")
    }

    /// Deletes one of the environment's users now. False when it is not one of them.
    public func revokeCredentials(team: String, name: String, username: String) async throws -> Bool? {
        guard let (environment, record) = try await loadForChange(team: team, name: name) else { return nil }
        guard EnvironmentNaming.isUser(username, of: environment.vhost) else { return false }
        let deleted = try await step("revoke user") { try await admin.deleteUser(username) }
        if record.revocations[username] != nil {
            try await records.change(environment.vhost, incarnation: record.incarnation, step: "clear revocation") {
                $0.revocations[username] = nil
            }
        }
        logger.info("credentials revoked", metadata: ["vhost": "\(environment.vhost)", "user": "\(username)"])
        return deleted
    }

    /// Revokes the users of `record` (a validated record of `vhost`) whose time has come (the
    /// janitor calls this). Returns how many.
    func revokeDue(_ record: EnvironmentRecord, vhost: String, now: Date = .now) async throws -> Int {
        let due = record.revocations.filter { user, at in
            guard EnvironmentNaming.isUser(user, of: vhost, incarnation: record.incarnation) else { return false }
            guard let time = try? Date(at, strategy: .iso8601) else { return true }
            return time <= now
        }
        guard !due.isEmpty else { return 0 }
        // A bounded few at a time (see `BoundedConcurrency.swift`); a user already gone is no failure.
        let admin = admin, inFlight = 4
        try await eachConcurrently(due.keys, limit: inFlight) { [self] user in
            _ = try await step("revoke user") { try await admin.deleteUser(user) }
        }
        try await records.change(vhost, incarnation: record.incarnation, step: "clear revocation") {
            for user in due.keys { $0.revocations[user] = nil }
        }
        return due.count
    }
}
