import Logging
import RabbitManagement

/// Creates, inspects, lists and tears down environments on the broker. Keeps no state of its
/// own: everything it knows comes from the broker on each call, so replicas can run side by side.
public struct Provisioner: Sendable {
    private(set) var admin: any BrokerAdmin
    /// Warren's own management user. It gets permissions on every vhost it manages: the
    /// administrator tag alone does not reach resources inside a vhost.
    let serviceUser: String
    private(set) var logger: Logger
    /// How long a new vhost may take to report `running` on every node.
    let vhostReadyTimeout: Duration
    /// How many environments one team may have; held under parallel creates (see `holdQuota`).
    let maxEnvironmentsPerTeam: Int
    /// How long a create may run before it stops, removes what it made and answers 503. The
    /// janitor's grace must be longer than this plus the broker calls in flight at that moment.
    let createDeadline: Duration
    /// How long a record lock outlives a holder that died (see `RecordLock`): longer than a
    /// holder can take for its read and its write, each bounded by the management timeout.
    let recordLockLease: Duration

    /// The broker's release, read once and shared by every copy (see `logging(to:)`).
    let release: BrokerRelease

    /// The deadline of the create this task belongs to; steps past it fail as `busy`.
    @TaskLocal static var deadline: ContinuousClock.Instant?

    public init(
        admin: any BrokerAdmin, serviceUser: String, logger: Logger,
        vhostReadyTimeout: Duration = .seconds(15), maxEnvironmentsPerTeam: Int = 100,
        createDeadline: Duration = .seconds(60), recordLockLease: Duration = .seconds(30)
    ) {
        self.admin = admin
        self.serviceUser = serviceUser
        self.logger = logger
        self.vhostReadyTimeout = vhostReadyTimeout
        self.maxEnvironmentsPerTeam = maxEnvironmentsPerTeam
        self.createDeadline = createDeadline
        self.recordLockLease = recordLockLease
        self.release = BrokerRelease()
    }

    var records: EnvironmentRecordStore { EnvironmentRecordStore(provisioner: self) }

    // MARK: create

    /// Creates the environment, or re-ensures it and issues fresh credentials when it exists with
    /// the same spec: one set for each of `roles`. On any failure it removes what this call made
    /// and throws; it never leaves a vhost it created without its topology, and never removes
    /// one that another create has answered for.
    public func create(team: String, spec: EnvironmentSpec, roles: [Role] = [.full]) async throws -> CreateResult {
        try await measured("create") {
            try await Self.$deadline.withValue(.now + createDeadline) {
                // A create whose environment another create's rollback (or a DELETE) removed
                // under it starts over (at most twice): the caller asked for an environment, and
                // one racing create's failure is no reason to refuse it.
                let spec = try await explicit(spec)
                var rejoins = 0
                while true {
                    do {
                        return try await makeOrEnsure(team: team, spec: spec, roles: roles)
                    } catch let vanished as JoinedEnvironmentVanished {
                        guard rejoins < 2 else { throw vanished.underlying }
                        rejoins += 1
                        logger.notice("the environment this create joined went away; starting over", metadata: [
                            "vhost": "\(EnvironmentNaming.vhost(team: team, name: spec.name))", "error": "\(vanished.underlying)",
                        ])
                        try await waitWhileDeleting(EnvironmentNaming.vhost(team: team, name: spec.name))
                    }
                }
            }
        }
    }

    /// The environment a create worked on went away under it, removed by someone else.
    private struct JoinedEnvironmentVanished: Error {
        var underlying: any Error
    }

    /// Whether the environment of `incarnation` that a create joined is gone or going.
    private func vanished(_ vhost: String, incarnation: String) async -> Bool {
        switch try? await records.read(vhost) {
        case .absent: return true
        case .valid(let record): return record.incarnation != incarnation || record.state == .deleting
        default: return false
        }
    }

    /// Waits (a few seconds at most) for a delete under way to finish.
    private func waitWhileDeleting(_ vhost: String) async throws {
        for _ in 0..<30 {
            guard case .valid(let record) = try await records.read(vhost), record.state == .deleting else { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func makeOrEnsure(team: String, spec: EnvironmentSpec, roles: [Role]) async throws -> CreateResult {
        let vhost = EnvironmentNaming.vhost(team: team, name: spec.name)
        var record: EnvironmentRecord
        // Whether this create made the vhost for its own incarnation, and so may remove it.
        var ownsVhost = false
        // The incarnation this create joined, when another create made the vhost.
        var joined: String?
        switch try await records.read(vhost) {
        case .valid(let existing):
            record = try matching(existing, spec: spec)
            joined = record.incarnation
        case .foreign:
            throw ProvisioningError(code: .conflict, detail: "vhost \(vhost) exists and is not managed by Warren")
        case .invalid(let reason):
            logger.error("environment record fails validation", metadata: ["vhost": "\(vhost)", "reason": "\(reason)"])
            throw ProvisioningError.invalidRecord(spec.name, reason)
        case .absent:
            // A cheap refusal before anything is made; `holdQuota` below is what holds.
            try await checkQuota(team: team)
            record = EnvironmentRecord(team: team, spec: spec, createdAt: EnvironmentRecord.now())
            try await records.create(record, vhost: vhost)
            ownsVhost = true
        }

        var issued: [IssuedCredentials] = []
        do {
            record = try await prepare(vhost, record: record, ownsVhost: &ownsVhost)
            if !ownsVhost { joined = record.incarnation }
            if ownsVhost { try await holdQuota(team: team, incarnation: record.incarnation) }
            let environment = Environment(record: record, vhost: vhost)
            issued = roles.map { role in
                IssuedCredentials(
                    username: EnvironmentNaming.newUserName(vhost: vhost, incarnation: record.incarnation),
                    password: PasswordGenerator.make(), role: role)
            }
            // Users and topology do not depend on each other: make them at once.
            try await concurrently(
                issued.map { credentials in { @Sendable in try await makeUser(credentials, for: environment) } }
                    + [{ @Sendable in try await declareTopology(environment) }])
            if record.state != .ready {
                // A DELETE that began meanwhile keeps its `deleting`: the store refuses to undo it.
                try await records.change(vhost, incarnation: record.incarnation, step: "mark ready") { $0.state = .ready }
            }
            logger.info("environment ready", metadata: [
                "vhost": "\(vhost)", "users": "\(issued.map(\.username).joined(separator: ","))", "created": "\(ownsVhost)",
            ])
            return CreateResult(environment: environment, credentials: issued, created: ownsVhost)
        } catch {
            let removed = await rollBack(vhost: vhost, incarnation: ownsVhost ? record.incarnation : nil, users: issued.map(\.username))
            // Not this create's own rollback, but another's (or a DELETE) took the environment
            // away under it: start over rather than fail.
            if !removed, let attempted = joined ?? (ownsVhost ? record.incarnation : nil), await vanished(vhost, incarnation: attempted) {
                throw JoinedEnvironmentVanished(underlying: error)
            }
            throw error
        }
    }

    /// Refuses a create when the team already has its quota of environments, as the broker
    /// counts them: a cheap check before anything is made.
    private func checkQuota(team: String) async throws {
        let owned = try await step("count environments") { try await admin.countVhosts(prefix: EnvironmentNaming.teamPrefix(team)) }
        guard owned < maxEnvironmentsPerTeam else { throw quotaExceeded(team: team) }
    }

    /// What holds the quota under racing creates on any number of instances: the count is
    /// taken again once this create's vhost exists. Of any two racing creates the one that
    /// counts later sees both vhosts, so the last of the creates that go ahead sees them all,
    /// and they never pass the quota together. When the count is over, the racing creates
    /// (`creating`) are ranked by creation time and incarnation: one ranked past the quota
    /// gives up (and its rollback removes its vhost), the others count again shortly, until the
    /// count fits or they are past the quota themselves. So racing creates fill the quota
    /// rather than all refusing each other.
    private func holdQuota(team: String, incarnation: String) async throws {
        let prefix = EnvironmentNaming.teamPrefix(team)
        for _ in 0..<40 {
            let owned = try await step("count environments") { try await admin.countVhosts(prefix: prefix) }
            guard owned > maxEnvironmentsPerTeam else { return }
            let listed = try await step("list vhosts") { try await admin.vhosts() }.filter { $0.name.hasPrefix(prefix) }
            var racing: [EnvironmentRecord] = []
            var leaving = 0
            for info in listed {
                guard case .valid(let record) = EnvironmentRecordStore.reading(info) else { continue }
                if record.state == .creating { racing.append(record) }
                if record.state == .deleting { leaving += 1 }
            }
            racing.sort { ($0.createdAt, $0.incarnation) < ($1.createdAt, $1.incarnation) }
            // What stays: everything but the racing creates and the environments on their way
            // out (those still count above until they are gone); records that fail validation
            // stay too.
            let settled = listed.count - racing.count - leaving
            let rank = racing.firstIndex { $0.incarnation == incarnation } ?? racing.count
            logger.debug("over quota while creates race", metadata: [
                "team": "\(team)", "count": "\(owned)", "settled": "\(settled)", "racing": "\(racing.count)", "leaving": "\(leaving)", "rank": "\(rank)",
            ])
            guard settled + rank < maxEnvironmentsPerTeam else { throw quotaExceeded(team: team) }
            try await Task.sleep(for: .milliseconds(Int.random(in: 50...100)))
        }
        throw quotaExceeded(team: team)
    }

    private func quotaExceeded(team: String) -> ProvisioningError {
        ProvisioningError(
            code: .quotaExceeded,
            detail: "team \(team) has as many environments as it may: the limit is \(maxEnvironmentsPerTeam); delete one first")
    }

    /// What every create and repair does first: wait until the vhost runs, give Warren's own
    /// user permissions in it, and hold the claim on the name. Returns the record of the
    /// incarnation that holds the claim: a create that finds another create of the same spec
    /// ahead of it joins that one (and clears `ownsVhost`). A lost claim clears `ownsVhost`
    /// and throws a conflict: the vhost belongs to the create that won.
    func prepare(_ vhost: String, record: EnvironmentRecord, ownsVhost: inout Bool) async throws -> EnvironmentRecord {
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
            let madeVhost = ownsVhost
            ownsVhost = false
            throw await lostClaim(vhost, record: record, madeVhost: madeVhost)
        }
        // The claim carries the record of whoever declared it first (a redeclare does not
        // change its arguments), checked like any other record.
        let queue = try await step("read claim") { try await admin.queue(vhost: vhost, name: Claim.queueName) }
        guard let holder = queue.flatMap(Claim.record(in:)), holder.problem(in: vhost) == nil else {
            throw ProvisioningError.invalidRecord(record.spec.name, "its claim does not hold a valid record")
        }
        guard holder.incarnation != record.incarnation else { return record }
        if ownsVhost {
            // Another create of the same spec made the vhost first, and this one's PUT wrote
            // its own record over the winner's: put the winner's back, unless it moved on.
            ownsVhost = false
            _ = try? await records.change(vhost, incarnation: record.incarnation, step: "restore record") { $0 = holder }
        }
        return holder
    }

    /// Another create of this name with another spec declared the claim first. When this
    /// create's PUT wrote its record over the winner's, the winner's is put back; the answer
    /// names the fields that differ.
    private func lostClaim(_ vhost: String, record: EnvironmentRecord, madeVhost: Bool) async -> ProvisioningError {
        var fields = ["spec"]
        if let queue = try? await admin.queue(vhost: vhost, name: Claim.queueName), let winner = Claim.record(in: queue),
           winner.problem(in: vhost) == nil {
            fields = record.spec.differences(from: winner.spec)
            if madeVhost {
                _ = try? await records.change(vhost, incarnation: record.incarnation, step: "restore record") { $0 = winner }
            }
        }
        return ProvisioningError(
            code: .conflict,
            detail: "environment \(record.spec.name) is being created with a different spec: \(fields.joined(separator: ", ")) differ",
            fields: fields)
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
    private func matching(_ record: EnvironmentRecord, spec: EnvironmentSpec) throws -> EnvironmentRecord {
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
    /// every node reports it running (declaring into it early can fail with 401 or
    /// `vhost_supervisor_not_running`).
    func waitUntilRunning(_ vhost: String) async throws {
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
                        try await declareQueue(queue, in: vhost, of: environment.spec)
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
        // Policies last: one that turns dead-lettering on points at the exchange, queue and
        // binding made above, so no message is dead-lettered to where nothing takes it.
        try await applyPolicies(environment)
        let limits = environment.spec.limits
        for (name, value) in [("max-queues", limits.maxQueues), ("max-connections", limits.maxConnections)] {
            guard let value else { continue }
            try await step("set vhost limit") { try await admin.putVhostLimit(vhost: vhost, name: name, value: value) }
        }
    }

    /// Creates or replaces each queue's policy (repairing one changed or removed meanwhile).
    func applyPolicies(_ environment: Environment) async throws {
        let vhost = environment.vhost
        try await concurrently(Topology(environment.spec).policies.map { policy in
            { @Sendable in
                try await step("apply queue policy") {
                    try await admin.putPolicy(
                        vhost: vhost, name: policy.name, pattern: policy.pattern, definition: policy.definition, priority: 0, applyTo: "queues")
                }
            }
        })
    }

    /// Declares a queue; durable defaults to false on the broker, so it is always sent. A queue
    /// declared by an earlier Warren, with its settings as arguments, refuses today's arguments
    /// as inequivalent: when what it holds agrees with the spec it is left as it is (its
    /// policy is applied all the same, and the arguments it holds win over it).
    private func declareQueue(_ queue: Topology.QueuePlan, in vhost: String, of spec: EnvironmentSpec) async throws {
        do {
            try await step("declare queue") {
                try await admin.putQueue(vhost: vhost, name: queue.name, durable: true, autoDelete: false, arguments: queue.arguments)
            }
        } catch let error as ProvisioningError where error.underlying?.code == .badRequest {
            guard let wanted = spec.queues.first(where: { $0.name == queue.name }),
                let info = try await step("read queue", { try await admin.queue(vhost: vhost, name: queue.name) }),
                Topology.isEarlierDeclaration(info, of: wanted, deadLetterExchange: Topology.deadLetterExchange(of: spec))
            else { throw error }
        }
    }

    /// Removes what a failed create made: its users, and the vhost when this create's
    /// incarnation made it, holds its claim (or nobody does yet), and the record still says
    /// `creating` (a create of the same spec that joined it and finished has marked it `ready`
    /// and answered for it: it stays). True when it removed the vhost. Best effort: a failure
    /// here is logged, and the janitor or a later DELETE removes what remains.
    @discardableResult
    func rollBack(vhost: String, incarnation: String?, users: [String]) async -> Bool {
        await Self.$deadline.withValue(nil) {
            for user in users {
                do { _ = try await admin.deleteUser(user) } catch {
                    logger.error("rollback could not delete user", metadata: ["user": "\(user)", "error": "\(error)"])
                }
            }
            guard let incarnation else { return false }
            // The failure being rolled back may still be going on (a node restarting, a
            // connection reset): a few tries, spaced out, before the janitor is left to it.
            for pause in [Duration.milliseconds(400), .milliseconds(800), .zero] {
                do {
                    // Two creates that both found no vhost both wrote a record; the claim says
                    // whose the environment is. The other's stays.
                    let claim = try await step("read claim") { try await admin.queue(vhost: vhost, name: Claim.queueName) }
                    if let holder = claim.flatMap(Claim.record(in:)), holder.incarnation != incarnation { return false }
                    let record = try await records.change(vhost, incarnation: incarnation, step: "mark deleting") {
                        if $0.state == .creating { $0.state = .deleting }
                    }
                    guard record.state == .deleting else { return false }
                    try await finishDelete(vhost, incarnation: incarnation)
                    return true
                } catch let error as ProvisioningError where (error.code == .broker || error.code == .busy) && pause > .zero {
                    try? await Task.sleep(for: pause)
                } catch {
                    logger.error("rollback could not delete vhost", metadata: ["vhost": "\(vhost)", "error": "\(error)"])
                    return false
                }
            }
            return false
        }
    }

    // MARK: helpers

    /// Runs one broker call, naming the step in the error when it fails.
    func step<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        if let deadline = Self.deadline, start > deadline {
            throw ProvisioningError(code: .busy, detail: "the create did not finish in time (the broker is slow); nothing was kept, try again", step: name)
        }
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
        var copy = self
        copy.admin = admin.logging(to: logger)
        copy.logger = logger
        return copy
    }

    /// The spec with what this broker's release would do unasked written in (see
    /// `EnvironmentSpec.explicit(forMajorVersion:)`).
    func explicit(_ spec: EnvironmentSpec) async throws -> EnvironmentSpec {
        let major = try await step("read overview") { try await release.majorVersion(from: admin) }
        return spec.explicit(forMajorVersion: major)
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
