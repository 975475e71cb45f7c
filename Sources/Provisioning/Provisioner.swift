import BrokerState
import EnvironmentModel
import Logging
internal import RabbitManagement

/// Creates, inspects, lists and tears down environments on the broker. Keeps no state of its
/// own: everything it knows comes from the broker on each call, so replicas can run side by side.
public struct Provisioner: Sendable {
    /// The broker as the stores beneath see it: management API, logger, Warren's own user,
    /// the bounds of one call, this process's lock turns.
    private(set) var session: BrokerSession
    var admin: any BrokerAdmin { session.admin }
    var logger: Logger { session.logger }
    var serviceUser: String { session.serviceUser }
    /// How many environments one team may have; held under parallel creates (see `holdQuota`).
    let maxEnvironmentsPerTeam: Int
    /// How long a create may run before it stops, removes what it made and answers 503. The
    /// janitor's grace must be longer than this plus the broker calls in flight at that moment.
    let createDeadline: Duration
    /// The most an environment, its users and its queues may take (see `Ceilings`).
    public let ceilings: Ceilings
    /// Ceilings of their own for environments made from some blueprints (tiers), by blueprint.
    public let tiers: [String: Ceilings]

    /// The broker's release, read once and shared by every copy (see `logging(to:)`).
    let release: BrokerRelease
    /// Asynchronous operations still going on after their answer; shared by every copy.
    public let background: BackgroundWork
    /// Each team's credentials per minute (see `TeamBudget`); shared by every copy.
    let rotations: TeamBudget
    /// Each team's requests that read the broker, per minute; shared by every copy.
    let reads: TeamBudget

    /// `longestCall`: the longest one broker call can take (the management timeout, once per
    /// node tried); the lease of record locks and the longest create are derived from it.
    package init(
        admin: any BrokerAdmin, serviceUser: String, logger: Logger,
        vhostReadyTimeout: Duration = .seconds(15), maxEnvironmentsPerTeam: Int = 100,
        createDeadline: Duration = .seconds(60), longestCall: Duration = .seconds(10), ceilings: Ceilings = Ceilings(),
        tiers: [String: Ceilings] = [:]
    ) {
        self.session = BrokerSession(
            admin: admin, logger: logger, serviceUser: serviceUser, vhostReadyTimeout: vhostReadyTimeout, longestCall: longestCall)
        self.maxEnvironmentsPerTeam = maxEnvironmentsPerTeam
        self.createDeadline = createDeadline
        self.ceilings = ceilings
        self.tiers = tiers
        self.release = BrokerRelease()
        self.background = BackgroundWork()
        self.rotations = TeamBudget(perMinute: ceilings.rotationsPerMinute)
        self.reads = TeamBudget(perMinute: ceilings.readsPerMinute)
    }

    /// How long a record lock outlives a holder that died (see `BrokerSession`).
    var recordLockLease: Duration { session.recordLockLease }

    /// The longest a create can last: it stops at its deadline, and the broker calls in flight
    /// then each end within one call's bound. The janitor's grace must be longer (see
    /// `Janitor.problem(withGrace:for:)`).
    public var longestCreate: Duration { createDeadline + session.longestCall }

    var records: EnvironmentRecordStore { EnvironmentRecordStore(session: session) }

    /// The team's index of environments (see `TeamIndex`).
    var teamIndex: TeamIndex { TeamIndex(session: session) }

    /// A user of the environment with the permissions of its role, its user limits, and no
    /// management tags.
    func makeUser(_ credentials: IssuedCredentials, for environment: Environment) async throws {
        try await step("create user") {
            try await admin.putUser(credentials.username, passwordHash: RabbitPasswordHash.hash(password: credentials.password), tags: [])
        }
        try await concurrently([
            { @Sendable in try await grant(credentials.role, to: credentials.username, in: environment) },
            { @Sendable in try await applyUserLimits(credentials.username, in: environment) },
        ])
    }

    /// The role's permissions, and before them an agent's routing keys. In that order because a
    /// user with no permissions on the vhost cannot log in at all, while one with permissions
    /// and no topic permission could publish every key: a crash between the two calls must
    /// leave the first (an asynchronous create hands out the password before its users exist,
    /// and the janitor would finish such a create as complete). A user left without
    /// permissions is an orphan the janitor removes.
    func grant(_ role: Role, to user: String, in environment: Environment) async throws {
        let permissions = role.permissions(for: environment.spec)
        if let topic = permissions.topic {
            // `read` governs binding from the exchange by key; an agent cannot bind at all
            // (it has no configure and no read on the exchange), so it gets no key there.
            try await step("grant topic permissions") {
                try await admin.putTopicPermission(vhost: environment.vhost, user: user, exchange: topic.exchange, write: topic.write, read: "^$")
            }
        }
        try await step("grant user permissions") {
            try await admin.putPermissions(
                vhost: environment.vhost, user: user,
                configure: permissions.configure, write: permissions.write, read: permissions.read)
        }
    }

    func waitUntilRunning(_ vhost: String) async throws { try await session.waitUntilRunning(vhost) }

    /// Declares every exchange and queue of the spec at once, then every binding, then the
    /// policies and the ceilings (see Provisioner+Ceilings.swift). Each declaration is idempotent, so this also repairs drift.
    ///
    /// `ceilingsInPlace`: a create has put the ceilings in a vhost it made before anything
    /// else (see `makeParts`), so they are not put again here.
    func declareTopology(_ environment: Environment, ceilingsInPlace: Bool = false) async throws {
        let vhost = environment.vhost
        // Streams get segments small enough for their byte ceiling to hold (StreamSettings.swift).
        let share = ceilings(for: environment).inForce(environment.spec.limits).maxQueueBytes
        let topology = Topology(environment.spec).cappingStreamSegments(queueBytes: share)
        try await concurrently(
            topology.exchanges.map { exchange in
                { @Sendable in
                    try await declareExchange(exchange, in: vhost, of: environment.spec)
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
        if !ceilingsInPlace { try await applyCeilings(environment) }
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

    /// Declares an exchange, or adopts the one there when it is exactly Warren's (see
    /// `Topology+Adoption.swift`); otherwise a conflict. A 201 costs nothing more; a 204 (it
    /// existed, and the broker compared only type, durability, auto-delete and internal) is
    /// read back, since its arguments may differ; a 400 is read to name what differs.
    private func declareExchange(_ exchange: Topology.ExchangePlan, in vhost: String, of spec: EnvironmentSpec) async throws {
        for _ in 0..<2 {
            let refusal: ProvisioningError?
            do {
                let created = try await step("declare exchange") {
                    try await admin.putExchange(vhost: vhost, name: exchange.name, type: exchange.type, durable: true, autoDelete: false, arguments: exchange.arguments)
                }
                if created { return }
                refusal = nil
            } catch let error as ProvisioningError where error.underlying?.code == .badRequest {
                refusal = error
            }
            // Gone since (a tenant deleted it, or it was auto-delete): declared again, once.
            guard let info = try await step("read exchange", { try await admin.exchange(vhost: vhost, name: exchange.name) }) else {
                if let refusal { throw refusal }
                continue
            }
            let differences = Topology.differences(of: info, from: exchange)
            if differences.isEmpty {
                if let refusal { throw refusal }
                return
            }
            let isDeadLetter = exchange.name == Topology.deadLetterExchange(of: spec) && exchange.name != spec.exchange.name
            throw ProvisioningError(
                code: .conflict,
                detail: "exchange \(exchange.name)\(isDeadLetter ? " (where dead_letter queues are dead-lettered)" : "") exists with \(Topology.describe(differences)); Warren uses an existing exchange only when it is exactly what Warren would make: delete it, or choose another name",
                fields: isDeadLetter ? spec.queues.filter(\.deadLetter).map { "queues[\($0.name)].dead_letter" } : ["exchange"],
                fieldReason: Self.adoptionReason)
        }
        throw ProvisioningError(code: .broker, detail: "exchange \(exchange.name) kept disappearing while it was declared", step: "declare exchange")
    }

    /// Declares a queue, or adopts the one there when it is exactly Warren's (see
    /// `Topology+Adoption.swift`; a queue an earlier Warren declared with its settings as
    /// arguments counts, when they agree with the spec); otherwise a conflict. A create's
    /// queues are new (201) and cost nothing more; a 204 means the queue existed and the broker
    /// compared only some of its properties, so it is read back; a 400 (inequivalent, or
    /// exclusive to a connection) is read to name what differs. `durable` defaults to false on
    /// the broker, so it is always sent.
    private func declareQueue(_ queue: Topology.QueuePlan, in vhost: String, of spec: EnvironmentSpec) async throws {
        for _ in 0..<2 {
            let refusal: ProvisioningError?
            do {
                let created = try await step("declare queue") {
                    try await admin.putQueue(vhost: vhost, name: queue.name, durable: true, autoDelete: false, arguments: queue.arguments)
                }
                if created { return }
                refusal = nil
            } catch let error as ProvisioningError where error.underlying?.code == .badRequest {
                refusal = error
            }
            // Gone since (an exclusive queue whose connection closed, say): declared again, once.
            guard let info = try await step("read queue", { try await admin.queue(vhost: vhost, name: queue.name) }) else {
                if let refusal { throw refusal }
                continue
            }
            let specQueue = spec.queues.first { $0.name == queue.name }
            let differences = Topology.differences(
                of: info, from: queue, specQueue: specQueue, deadLetterExchange: Topology.deadLetterExchange(of: spec))
            // An earlier Warren's queue refuses today's arguments (400) and is left as it is.
            if differences.isEmpty { return }
            let owner = specQueue == nil ? spec.queues.first { $0.deadLetterQueue == queue.name } : nil
            throw ProvisioningError(
                code: .conflict,
                detail: "queue \(queue.name)\(owner.map { " (the dead-letter queue of \($0.name))" } ?? "") exists with \(Topology.describe(differences)); Warren uses an existing queue only when it is exactly what Warren would make, and cannot change a queue in place: delete it, or choose another name",
                fields: [owner.map { "queues[\($0.name)].dead_letter" } ?? "queues[\(queue.name)]"],
                fieldReason: Self.adoptionReason)
        }
        throw ProvisioningError(code: .broker, detail: "queue \(queue.name) kept disappearing while it was declared", step: "declare queue")
    }

    private static let adoptionReason = "exists on the broker (made by a client) with other properties than Warren would give it"

    // MARK: helpers

    /// Runs one broker call, naming the step in the error when it fails (see `BrokerSession`).
    func step<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        try await session.step(name, body)
    }

    /// A copy whose broker calls log through `logger` (which carries the request id).
    public func logging(to logger: Logger) -> Provisioner {
        var copy = self
        copy.session = session.logging(to: logger)
        return copy
    }

    /// The spec with what this broker's release would do unasked written in (see
    /// `EnvironmentSpec.explicit(for:)`); a setting the release does not take is refused.
    func explicit(_ spec: EnvironmentSpec) async throws -> EnvironmentSpec {
        try spec.explicit(for: try await brokerVersion())
    }

    /// An addition's queues as this broker's release makes them: what a PATCH compares with
    /// the environment's spec.
    public func explicit(_ addition: TopologyAddition) async throws -> TopologyAddition {
        try addition.explicit(for: try await brokerVersion())
    }

    func brokerVersion() async throws -> BrokerVersion {
        try await step("read overview") { try await release.version { try await admin.overview().rabbitmqVersion } }
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
