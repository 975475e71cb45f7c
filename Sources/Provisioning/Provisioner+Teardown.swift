import RabbitManagement

extension Provisioner {
    /// Removes the environment's users, then its vhost and everything in it. Works on complete,
    /// half-made and drifted environments alike. False when there was nothing to delete.
    public func delete(team: String, name: String) async throws -> Bool {
        try await measured("delete") { try await tearDown(team: team, name: name) }
    }

    private func tearDown(team: String, name: String) async throws -> Bool {
        let vhost = EnvironmentNaming.vhost(team: team, name: name)
        guard try await step("read vhost", { try await admin.vhost(vhost) }) != nil else { return false }
        // Users with permissions are found through the vhost; a user whose permissions never
        // arrived (a crash between the two calls) only through the full user list.
        async let permitted = step("read permissions") { try await admin.permissions(vhost: vhost) }
        async let all = step("list users") { try await admin.users() }
        let users = Set(try await permitted.map(\.user) + all.map(\.name)).filter { EnvironmentNaming.isUser($0, of: vhost) }
        // Users first: if this is interrupted, the vhost is still there for a retried DELETE to find.
        try await concurrently(users.map { user in { try await step("delete user") { _ = try await admin.deleteUser(user) } } })
        _ = try await step("delete vhost") { try await admin.deleteVhost(vhost) }
        logger.info("environment deleted", metadata: ["vhost": "\(vhost)", "users": "\(users.count)"])
        return true
    }
}
