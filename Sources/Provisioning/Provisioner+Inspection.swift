import BrokerState
import EnvironmentModel
internal import RabbitManagement

extension Provisioner {
    /// The team's environments with a valid record, by name (one whose record fails
    /// validation is shown by GET as `degraded`, with the reason).
    /// The team's environments, from its index (`TeamIndex`): one read of the index and one
    /// of each of its vhosts, a few at once, whatever the number of other teams'
    /// environments. A team without an index yet (none of its environments was made since
    /// there are indexes) is listed from the whole vhost listing.
    public func list(team: String) async throws -> [Environment] {
        let infos: [VhostInfo]
        if let names = try await teamIndex.read(team: team) {
            infos = try await vhosts(names.map { EnvironmentNaming.vhost(team: team, name: $0) })
        } else {
            let prefix = EnvironmentNaming.teamPrefix(team)
            infos = try await step("list vhosts") { try await admin.vhosts() }.filter { $0.name.utf8.starts(with: prefix.utf8) }
        }
        return infos
            .compactMap { info in
                guard case .valid(let record) = EnvironmentRecordStore.reading(info) else { return nil }
                return Environment(record: record, vhost: info.name)
            }
            .sorted { $0.name < $1.name }
    }

    /// The vhosts of these names that exist, read eight at a time.
    private func vhosts(_ names: [String]) async throws -> [VhostInfo] {
        var found: [VhostInfo] = []
        for start in stride(from: 0, to: names.count, by: 8) {
            let batch = names[start..<min(start + 8, names.count)]
            try await withThrowingTaskGroup(of: VhostInfo?.self) { group in
                for name in batch {
                    group.addTask { [admin] in try await self.step("read vhost") { try await admin.vhost(name) } }
                }
                for try await info in group { if let info { found.append(info) } }
            }
        }
        return found
    }

    /// The environment and its valid record, to change it: nil when there is no such
    /// environment; `.invalidRecord` when its record fails validation; a conflict when a
    /// DELETE of it has begun.
    func loadForChange(team: String, name: String, allowingFailed: Bool = false) async throws -> (Environment, EnvironmentRecord)? {
        let vhost = EnvironmentNaming.vhost(team: team, name: name)
        switch try await records.read(vhost) {
        case .absent, .foreign:
            return nil
        case .invalid(let reason):
            logger.error("environment record fails validation", metadata: ["vhost": "\(vhost)", "reason": "\(reason)"])
            throw ProvisioningError.invalidRecord(name, reason)
        case .valid(let record):
            guard record.state != .deleting else { throw ProvisioningError.beingDeleted(name) }
            guard allowingFailed || record.state != .failed else { throw ProvisioningError.failed(name, record.failureReason) }
            return (Environment(record: record, vhost: vhost), record)
        }
    }

    /// Runs a change to an existing environment. When a broker step fails because the
    /// environment went away meanwhile (a DELETE removed its vhost, or has begun to), the answer
    /// says so (404, 409) rather than blaming the broker.
    func whileItExists<T>(_ environment: Environment, incarnation: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ProvisioningError where error.code == .broker || error.code == .busy {
            switch try? await records.read(environment.vhost) {
            case .absent?: throw ProvisioningError.gone(environment.name)
            case .valid(let now)? where now.incarnation != incarnation: throw ProvisioningError.replaced(environment.name)
            case .valid(let now)? where now.state == .deleting: throw ProvisioningError.beingDeleted(environment.name)
            default: throw error
            }
        }
    }

    /// The environment and which of its parts exist on the broker; nil when it does not exist.
    /// One whose record fails validation is reported with `recordProblem` and nothing of what
    /// the record says.
    public func inspect(team: String, name: String) async throws -> EnvironmentHealth? {
        let vhost = EnvironmentNaming.vhost(team: team, name: name)
        let environment: Environment, record: EnvironmentRecord
        // Read here rather than through the store's `read`: the vhost also says whether the
        // broker protects it from deletion.
        let info = try await step("read vhost") { try await admin.vhost(vhost) }
        switch info.map(EnvironmentRecordStore.reading) ?? .absent {
        case .absent, .foreign:
            return nil
        case .invalid(let reason):
            logger.error("environment record fails validation", metadata: ["vhost": "\(vhost)", "reason": "\(reason)"])
            // Nothing of the record is shown; its users are found by name, as a DELETE finds them.
            let users = try await step("read permissions") { try await admin.permissions(vhost: vhost) }
                .filter { EnvironmentNaming.isUser($0.user, of: vhost) }
                .map { (name: $0.user, role: Role.of($0)) }
                .sorted { $0.name < $1.name }
            return EnvironmentHealth(
                invalid: Environment(team: team, vhost: vhost, spec: EnvironmentSpec(name: name), createdAt: EnvironmentHealth.unknownTime),
                users: users, reason: reason)
        case .valid(let found):
            (environment, record) = (Environment(record: found, vhost: vhost), found)
        }
        do {
            var health = try await parts(of: environment, record: record)
            health.brokerProtected = info?.protectedFromDeletion
            return health
        } catch let error as ProvisioningError where error.code == .broker || error.underlying?.code == .notFound {
            // A DELETE that began meanwhile removes the parts under the reads (RabbitMQ 3.10
            // answers 400 for the permissions of a vhost it is deleting): the environment is
            // going, which is the answer, not the broker's failure.
            switch try? await records.read(vhost) {
            case .absent?:
                return nil
            case .valid(let now)? where now.incarnation == record.incarnation && now.state == .deleting:
                return EnvironmentHealth(
                    environment: environment, users: [], resources: EnvironmentHealth.Resources(exchange: false, queue: false, binding: false, user: false),
                    revocations: now.revocations, state: .deleting)
            default:
                throw error
            }
        }
    }

    /// What of the environment exists on the broker: its exchanges, queues and bindings as the
    /// record names them, and its users (read at once).
    private func parts(of environment: Environment, record: EnvironmentRecord) async throws -> EnvironmentHealth {
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
        var health = EnvironmentHealth(
            environment: environment, users: users, resources: resources, revocations: record.revocations, state: record.state)
        health.failureReason = record.state == .failed ? record.failureReason ?? "the create could not finish" : nil
        return health
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
