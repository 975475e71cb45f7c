import Logging
import RabbitManagement

/// Creates, inspects, lists and tears down environments on the broker. Keeps no state of its
/// own: everything it knows comes from the broker on each call, so replicas can run side by side.
public struct Provisioner: Sendable {
    let admin: any BrokerAdmin
    /// Warren's own management user. It gets permissions on every vhost it manages: the
    /// administrator tag alone does not reach resources inside a vhost.
    let serviceUser: String
    let logger: Logger
    /// How long a new vhost may take to report `running` on every node.
    let vhostReadyTimeout: Duration
    /// How many environments one team may have. Checked before a new one is made; creates
    /// racing each other may overshoot it by the number in flight.
    let maxEnvironmentsPerTeam: Int

    public init(
        admin: any BrokerAdmin, serviceUser: String, logger: Logger,
        vhostReadyTimeout: Duration = .seconds(15), maxEnvironmentsPerTeam: Int = 100
    ) {
        self.admin = admin
        self.serviceUser = serviceUser
        self.logger = logger
        self.vhostReadyTimeout = vhostReadyTimeout
        self.maxEnvironmentsPerTeam = maxEnvironmentsPerTeam
    }

    // MARK: create

    /// Creates the environment, or re-ensures it and issues fresh credentials when it exists with
    /// the same spec: one set for each of `roles`. On any failure it removes what this call made
    /// and throws; it never leaves a vhost it created without its topology.
    public func create(team: String, spec: EnvironmentSpec, roles: [Role] = [.full]) async throws -> CreateResult {
        try await measured("create") { try await makeOrEnsure(team: team, spec: spec, roles: roles) }
    }

    private func makeOrEnsure(team: String, spec: EnvironmentSpec, roles: [Role]) async throws -> CreateResult {
        let vhost = EnvironmentNaming.vhost(team: team, name: spec.name)
        let record: EnvironmentRecord
        let createdVhost: Bool

        if let existing = try await step("read vhost", { try await admin.vhost(vhost) }) {
            record = try matching(existing, team: team, spec: spec)
            createdVhost = false
        } else {
            let owned = try await step("count environments") { try await admin.countVhosts(prefix: EnvironmentNaming.teamPrefix(team)) }
            guard owned < maxEnvironmentsPerTeam else {
                throw ProvisioningError(
                    code: .quotaExceeded,
                    detail: "team \(team) has \(owned) environments and the limit is \(maxEnvironmentsPerTeam); delete one first")
            }
            record = EnvironmentRecord(team: team, spec: spec, createdAt: EnvironmentRecord.now())
            try await write(record, to: vhost, step: "create vhost")
            createdVhost = true
        }
        let environment = Environment(record: record, vhost: vhost)

        let issued = roles.map { role in
            IssuedCredentials(username: EnvironmentNaming.newUserName(vhost: vhost), password: PasswordGenerator.make(), role: role)
        }
        var ownsVhost = createdVhost
        do {
            try await prepare(environment, record: record, ownsVhost: &ownsVhost)
            // Users and topology do not depend on each other: make them at once.
            try await concurrently(
                issued.map { credentials in { @Sendable in try await makeUser(credentials, for: environment) } }
                    + [{ @Sendable in try await declareTopology(environment) }])
            if record.state != .ready {
                // A DELETE may have begun meanwhile: its `deleting` must not be overwritten by
                // `ready`, or a delete cut short would leave a `ready` environment with parts gone.
                let now = try await step("read vhost") { try await admin.vhost(vhost) }.flatMap { EnvironmentRecord.decode(description: $0.description) }
                guard now?.state != .deleting else {
                    ownsVhost = false
                    throw ProvisioningError.beingDeleted(spec.name)
                }
                var ready = record
                ready.state = .ready
                try await write(ready, to: vhost, step: "mark ready")
            }
        } catch {
            await rollBack(vhost: ownsVhost ? vhost : nil, users: issued.map(\.username))
            throw error
        }
        logger.info("environment ready", metadata: [
            "vhost": "\(vhost)", "users": "\(issued.map(\.username).joined(separator: ","))", "created": "\(createdVhost)",
        ])
        return CreateResult(environment: environment, credentials: issued, created: createdVhost)
    }

    /// What every create and repair does first: wait until the vhost runs, give Warren's own
    /// user permissions in it, and hold the claim on the name. A lost claim clears `ownsVhost`:
    /// the vhost belongs to the create that won.
    func prepare(_ environment: Environment, record: EnvironmentRecord, ownsVhost: inout Bool) async throws {
        let vhost = environment.vhost
        try await waitUntilRunning(vhost)
        try await step("grant service permissions") {
            try await admin.putPermissions(vhost: vhost, user: serviceUser, configure: ".*", write: ".*", read: ".*")
        }
        do {
            try await step("claim name") {
                try await admin.putQueue(
                    vhost: vhost, name: Claim.queueName, durable: true, autoDelete: false,
                    arguments: Claim.arguments(for: record))
            }
        } catch let error as ProvisioningError where error.underlying?.code == .badRequest {
            // The broker refused the declaration as inequivalent: another spec holds the name.
            ownsVhost = false
            throw await lostClaim(environment)
        }
    }

    /// Another create of this name with another spec declared the claim first. Its record is
    /// put back in the vhost description (this request may have overwritten it), and the
    /// answer names the fields that differ.
    private func lostClaim(_ environment: Environment) async -> ProvisioningError {
        let vhost = environment.vhost
        var fields = ["spec"]
        if let queue = try? await admin.queue(vhost: vhost, name: Claim.queueName), let winner = Claim.record(in: queue) {
            fields = environment.spec.differences(from: winner.spec)
            // Only when this request's write is what the description says now: the winner may
            // have marked its record ready since, and that must stand. A restored record says
            // `creating`; the janitor marks it ready once it finds the environment complete.
            let current = try? await admin.vhost(vhost).flatMap { EnvironmentRecord.decode(description: $0.description) }
            if current?.spec != winner.spec {
                try? await write(winner, to: vhost, step: "restore record")
            }
        }
        return ProvisioningError(
            code: .conflict,
            detail: "environment \(environment.name) is being created with a different spec: \(fields.joined(separator: ", ")) differ",
            fields: fields)
    }

    /// The vhost's description holds the record. A PUT replaces all of the vhost's metadata,
    /// so every write sends all of it.
    func write(_ record: EnvironmentRecord, to vhost: String, step name: String) async throws {
        try await step(name) {
            try await admin.putVhost(
                vhost, description: record.encoded(), tags: [EnvironmentRecord.vhostTag],
                defaultQueueType: record.spec.queue.type.rawValue)
        }
    }

    /// A user of the environment with the permissions of its role, and no management tags.
    func makeUser(_ credentials: IssuedCredentials, for environment: Environment) async throws {
        try await step("create user") {
            try await admin.putUser(credentials.username, passwordHash: RabbitPasswordHash.hash(password: credentials.password), tags: [])
        }
        try await grant(credentials.role, to: credentials.username, in: environment)
    }

    func grant(_ role: Role, to user: String, in environment: Environment) async throws {
        let permissions = role.permissions(for: environment.spec)
        try await step("grant user permissions") {
            try await admin.putPermissions(
                vhost: environment.vhost, user: user,
                configure: permissions.configure, write: permissions.write, read: permissions.read)
        }
    }

    /// The existing environment's record when it matches the requested spec; a conflict otherwise.
    private func matching(_ info: VhostInfo, team: String, spec: EnvironmentSpec) throws -> EnvironmentRecord {
        guard let record = EnvironmentRecord.decode(description: info.description), record.team == team else {
            throw ProvisioningError(code: .conflict, detail: "vhost \(info.name) exists and is not managed by Warren")
        }
        guard record.state != .deleting else {
            throw ProvisioningError.beingDeleted(spec.name)
        }
        let differences = spec.differences(from: record.spec)
        guard differences.isEmpty else {
            throw ProvisioningError(
                code: .conflict,
                detail: "environment \(spec.name) exists with a different spec: \(differences.joined(separator: ", ")) differ",
                fields: differences)
        }
        return record
    }

    /// A new vhost is not usable the moment PUT returns: declaring into it can fail until
    /// every node reports it running (see shared/rabbitmq-management-api.md).
    private func waitUntilRunning(_ vhost: String) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + vhostReadyTimeout
        var pause = Duration.milliseconds(5)
        while true {
            guard let info = try await step("wait for vhost", { try await admin.vhost(vhost) }) else {
                throw ProvisioningError(code: .broker, detail: "the vhost disappeared while it was being created", step: "wait for vhost")
            }
            if info.isRunning { return }
            guard clock.now + pause < deadline else {
                throw ProvisioningError(code: .vhostNotReady, detail: "vhost did not start on every broker node in time", step: "wait for vhost")
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(200))
        }
    }

    /// Declares every exchange and queue of the spec at once, then every binding, then the
    /// vhost limits. Each declaration is idempotent, so this also repairs drift.
    func declareTopology(_ environment: Environment) async throws {
        let vhost = environment.vhost
        let topology = Topology(environment.spec)
        try await concurrently(
            topology.exchanges.map { exchange in
                { @Sendable in
                    try await step("declare exchange") {
                        try await admin.putExchange(
                            vhost: vhost, name: exchange.name, type: exchange.type, durable: true, autoDelete: false, arguments: [:])
                    }
                }
            }
                + topology.queues.map { queue in
                    { @Sendable in
                        // durable defaults to false on the broker: always send it.
                        try await step("declare queue") {
                            try await admin.putQueue(vhost: vhost, name: queue.name, durable: true, autoDelete: false, arguments: queue.arguments)
                        }
                    }
                })
        try await concurrently(topology.bindings.map { binding in
            { @Sendable in
                try await step("bind queue") {
                    try await admin.bind(
                        vhost: vhost, exchange: binding.exchange, queue: binding.queue,
                        routingKey: binding.routingKey, arguments: binding.arguments)
                }
            }
        })
        let limits = environment.spec.limits
        for (name, value) in [("max-queues", limits.maxQueues), ("max-connections", limits.maxConnections)] {
            guard let value else { continue }
            try await step("set vhost limit") { try await admin.putVhostLimit(vhost: vhost, name: name, value: value) }
        }
    }

    /// Removes what a failed create made: the user first, then the vhost (which takes its
    /// exchanges, queues, bindings and permissions with it). Best effort: a failure here is
    /// logged, and a later DELETE of the environment removes what remains.
    func rollBack(vhost: String?, users: [String]) async {
        for user in users {
            do { _ = try await admin.deleteUser(user) } catch {
                logger.error("rollback could not delete user", metadata: ["user": "\(user)", "error": "\(error)"])
            }
        }
        guard let vhost else { return }
        do { _ = try await admin.deleteVhost(vhost) } catch {
            logger.error("rollback could not delete vhost", metadata: ["vhost": "\(vhost)", "error": "\(error)"])
        }
    }

    // MARK: helpers

    /// Runs one broker call, naming the step in the error when it fails.
    func step<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            ProvisioningMetrics.brokerCall(step: name, since: start)
            return result
        } catch let error as ManagementError {
            ProvisioningMetrics.brokerCall(step: name, since: start)
            ProvisioningMetrics.brokerError(step: name, kind: error.code.description)
            // Unreachable and timed-out calls name a node's address in their summary: internal
            // detail the API's callers need not see (it stays in the log).
            let why = switch error.code {
            case .unreachable: "the management API could not be reached"
            case .timeout: "the management API did not answer in time"
            case .tls: "the management API's TLS certificate could not be verified"
            default: error.summary
            }
            throw ProvisioningError(code: .broker, detail: "the broker failed to \(name): \(why)", step: name, underlying: error)
        }
    }

    /// A copy whose broker calls log through `logger` (which carries the request id).
    public func logging(to logger: Logger) -> Provisioner {
        Provisioner(
            admin: admin.logging(to: logger), serviceUser: serviceUser, logger: logger,
            vhostReadyTimeout: vhostReadyTimeout, maxEnvironmentsPerTeam: maxEnvironmentsPerTeam)
    }
}

/// Runs the operations at once and waits for all of them, so nothing is still in flight when a
/// caller starts rolling back; then throws the first error, if any.
func concurrently(_ operations: [@Sendable () async throws -> Void]) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for operation in operations { group.addTask(operation: operation) }
        var firstError: (any Error)?
        while let result = await group.nextResult() {
            if case .failure(let error) = result, firstError == nil { firstError = error }
        }
        if let firstError { throw firstError }
    }
}
