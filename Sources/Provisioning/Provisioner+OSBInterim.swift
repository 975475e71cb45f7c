// INTERIM, until the async core lands on main: the signatures /v2 is written against,
// implemented with today's synchronous create and delete. Removed at the merge.
extension Provisioner {
    public func create(
        team: String, spec: EnvironmentSpec, roles: [Role], platform: PlatformInstance?, finishInBackground: Bool
    ) async throws -> CreateResult {
        let result = try await create(team: team, spec: spec, roles: roles)
        if let platform, result.created {
            let vhost = result.environment.vhost
            guard case .valid(let record) = try await records.read(vhost) else { return result }
            try await records.change(vhost, incarnation: record.incarnation, step: "record platform") { $0.platform = platform }
        }
        return result
    }

    public func delete(team: String, name: String, force: Bool, finishInBackground: Bool) async throws -> Bool {
        try await delete(team: team, name: name, force: force)
    }
}

extension CreateResult {
    public var pending: Bool { false }
}
