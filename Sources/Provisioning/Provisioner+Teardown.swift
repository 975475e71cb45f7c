import RabbitManagement

extension Provisioner {
    /// Removes the environment's users, then its vhost and everything in it. Works on complete,
    /// half-made and drifted environments alike. False when there was nothing to delete.
    /// Unless `force`, refuses (`.messagesPending`) when its queues hold messages, as far as the
    /// broker's statistics (refreshed every few seconds) know.
    public func delete(team: String, name: String, force: Bool = true) async throws -> Bool {
        try await measured("delete") { try await tearDown(team: team, name: name, force: force) }
    }

    private func tearDown(team: String, name: String, force: Bool) async throws -> Bool {
        let vhost = EnvironmentNaming.vhost(team: team, name: name)
        guard let info = try await step("read vhost", { try await admin.vhost(vhost) }) else { return false }
        var deleting: EnvironmentRecord?
        if var record = EnvironmentRecord.decode(description: info.description) {
            if record.state != .deleting, !force { try await refuseIfMessagesPending(Environment(record: record, vhost: vhost)) }
            // Said on the broker before anything goes: a Warren killed from here on leaves an
            // environment the janitor knows to finish deleting, not a `ready` one with parts gone.
            record.state = .deleting
            try await write(record, to: vhost, step: "mark deleting")
            deleting = record
        }
        // Users with permissions are found through the vhost; a user whose permissions never
        // arrived (a crash between the two calls) only through the full user list.
        // The full list is a safety net only (the janitor removes orphan users too), and the
        // broker answers it with a 500 now and then while users are being deleted: a failure
        // there does not fail the DELETE.
        async let permitted = step("read permissions") { try await admin.permissions(vhost: vhost) }
        async let all = try? await admin.users()
        let users = Set(try await permitted.map(\.user) + (await all ?? []).map(\.name)).filter { EnvironmentNaming.isUser($0, of: vhost) }
        // Users first: if this is interrupted, the vhost is still there for a retried DELETE to find.
        try await concurrently(users.map { user in { try await step("delete user") { _ = try await admin.deleteUser(user) } } })
        // Once more right before the vhost goes: a create that read the record before the first
        // mark may have written `ready` over it since (see Provisioner.makeOrEnsure).
        if let deleting { try await write(deleting, to: vhost, step: "mark deleting") }
        _ = try await step("delete vhost") { try await admin.deleteVhost(vhost) }
        logger.info("environment deleted", metadata: ["vhost": "\(vhost)", "users": "\(users.count)"])
        return true
    }

    private func refuseIfMessagesPending(_ environment: Environment) async throws {
        let names = Topology(environment.spec).queues.map(\.name)
        var pending: [(String, Int)] = []
        for name in names {
            if let queue = try await step("read queue", { try await admin.queue(vhost: environment.vhost, name: name) }),
               let messages = queue.messages, messages > 0 {
                pending.append((name, messages))
            }
        }
        guard pending.isEmpty else {
            let total = pending.reduce(0) { $0 + $1.1 }
            throw ProvisioningError(
                code: .messagesPending,
                detail: "\(total) messages would be lost (\(pending.map { "\($0.0): \($0.1)" }.joined(separator: ", "))); delete with ?force=true to drop them")
        }
    }
}
