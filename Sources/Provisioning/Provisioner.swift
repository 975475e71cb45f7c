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
    /// The most an environment, its users and its queues may take (see `Ceilings`).
    public let ceilings: Ceilings

    /// The broker's release, read once and shared by every copy (see `logging(to:)`).
    let release: BrokerRelease
    /// Asynchronous operations still going on after their answer; shared by every copy.
    public let background: BackgroundWork
    /// This process's turns for the broker-held locks (see `LocalLocks`); shared by every copy.
    let localLocks: LocalLocks
    /// Each team's credentials per minute (see `RotationBudget`); shared by every copy.
    let rotations: RotationBudget

    /// The deadline of the create this task belongs to; steps past it fail as `busy`.
    @TaskLocal static var deadline: ContinuousClock.Instant?

    public init(
        admin: any BrokerAdmin, serviceUser: String, logger: Logger,
        vhostReadyTimeout: Duration = .seconds(15), maxEnvironmentsPerTeam: Int = 100,
        createDeadline: Duration = .seconds(60), recordLockLease: Duration = .seconds(30), ceilings: Ceilings = Ceilings()
    ) {
        self.admin = admin
        self.serviceUser = serviceUser
        self.logger = logger
        self.vhostReadyTimeout = vhostReadyTimeout
        self.maxEnvironmentsPerTeam = maxEnvironmentsPerTeam
        self.createDeadline = createDeadline
        self.recordLockLease = recordLockLease
        self.ceilings = ceilings
        self.release = BrokerRelease()
        self.background = BackgroundWork()
        self.localLocks = LocalLocks()
        self.rotations = RotationBudget(perMinute: ceilings.rotationsPerMinute)
    }

    var records: EnvironmentRecordStore { EnvironmentRecordStore(provisioner: self) }

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

    func grant(_ role: Role, to user: String, in environment: Environment) async throws {
        let permissions = role.permissions(for: environment.spec)
        try await step("grant user permissions") {
            try await admin.putPermissions(
                vhost: environment.vhost, user: user,
                configure: permissions.configure, write: permissions.write, read: permissions.read)
        }
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
    /// policies and the ceilings (see Provisioner+Ceilings.swift). Each declaration is idempotent, so this also repairs drift.
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
        try await applyCeilings(environment)
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
        spec.explicit(forMajorVersion: try await majorVersion())
    }

    /// An addition's queues as this broker's release makes them: what a PATCH compares with
    /// the environment's spec.
    public func explicit(_ addition: TopologyAddition) async throws -> TopologyAddition {
        addition.explicit(forMajorVersion: try await majorVersion())
    }

    func majorVersion() async throws -> Int {
        try await step("read overview") { try await release.majorVersion(from: admin) }
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
