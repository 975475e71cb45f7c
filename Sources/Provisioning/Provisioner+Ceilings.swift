import BrokerState
import EnvironmentModel
internal import RabbitManagement
import WireFormat

/// The operator's ceilings on the broker (see `Ceilings`). Per environment: the vhost limits,
/// three operator policies and two policies (one pair for streams); per user: two user limits. The broker enforces them
/// all; a tenant, who has no management access, can change none of them.
///
/// Queue ceilings are an operator policy over the whole vhost, so they reach the queues a
/// tenant declares itself too: an operator policy combines with a queue's own policy and
/// arguments, and the lower value wins. What a full queue does is a policy's `overflow`, which
/// RabbitMQ 3.10 does not take in operator policies: a policy of priority -1 over every queue
/// says `reject-publish` (a publisher with confirms gets a nack; nothing confirmed is dropped
/// to make room), and Warren's per-queue policies, which win over it, say the same unless the
/// team asked otherwise. A queue already over a ceiling when it comes into force keeps what it
/// holds and takes no more until it drains below.
enum CeilingPolicies {
    /// Operator policy: every queue's length and byte ceiling.
    static let queues = "\(EnvironmentNaming.reservedResourcePrefix)ceiling"
    /// Operator policy, above `queues`: Warren's own queues (the claim) hold no message at all.
    static let ownQueues = "\(EnvironmentNaming.reservedResourcePrefix)own"
    /// Policy of priority -1 over every queue: a full queue refuses, never drops.
    static let overflow = "\(EnvironmentNaming.reservedResourcePrefix)overflow"
    static let overflowPriority = -1

    static func queueCeiling(_ limits: LimitsInForce) -> [String: JSONValue] {
        ["max-length": .int(limits.maxQueueLength), "max-length-bytes": .int(limits.maxQueueBytes)]
    }

    static let ownQueuesDefinition: [String: JSONValue] = ["max-length": 0, "max-length-bytes": 0]
    static let ownQueuesPattern = "^\(Role.escaped(EnvironmentNaming.reservedResourcePrefix))"
    static let overflowDefinition: [String: JSONValue] = ["overflow": .string(EnvironmentSpec.Overflow.rejectPublish.rawValue)]

    /// Streams ignore a policy that holds any key a stream does not take (measured on 3.10, 4.0
    /// and 4.3: `max-length` in the ceiling, `overflow` in the overflow policy), and fall to the
    /// next policy of lower priority that applies. So they have two of their own, below the
    /// others: an operator policy with the byte share alone, their retention, and a policy that
    /// caps their segments (the broker takes the lower of it and a stream's own argument). A
    /// stream applies byte retention only when a segment fills (RabbitMQ's default segment is
    /// 500 MB), so without the second a tenant's own stream would keep 500 MB whatever the ceiling.
    static let streams = "\(EnvironmentNaming.reservedResourcePrefix)ceiling.streams"
    static let streamSegments = "\(EnvironmentNaming.reservedResourcePrefix)streams"

    static func streamCeiling(_ limits: LimitsInForce) -> [String: JSONValue] {
        ["max-length-bytes": .int(limits.maxQueueBytes)]
    }

    static func streamSegmentsDefinition(_ limits: LimitsInForce) -> [String: JSONValue] {
        ["stream-max-segment-size-bytes": .int(Topology.streamSegmentCap(queueBytes: limits.maxQueueBytes))]
    }
}

extension Provisioner {
    /// The ceilings of a tier (a blueprint with ceilings of its own); the global ones otherwise,
    /// a tier the operator has since removed included.
    public func ceilings(forTier tier: String?) -> Ceilings {
        tier.flatMap { tiers[$0] } ?? ceilings
    }

    public func ceilings(for environment: Environment) -> Ceilings {
        ceilings(forTier: environment.tier)
    }

    /// The tier an environment made from `blueprint` has: the blueprint's name when it has
    /// ceilings of its own.
    public func tier(ofBlueprint blueprint: String?) -> String? {
        blueprint.flatMap { tiers[$0] == nil ? nil : $0 }
    }

    /// Puts the environment's ceilings on the broker. The overflow policy goes first: a queue
    /// that is already over a ceiling when it comes into force must refuse, not drop its head;
    /// the rest then at once. In a `fresh` vhost (a create made it and no queue but the empty
    /// claim is there yet, see `makeParts`) every call goes at once, and the vhost's limits take
    /// one call, which replaces any others (a vhost this create made has none).
    func applyCeilings(_ environment: Environment, fresh: Bool = false) async throws {
        let vhost = environment.vhost
        let limits = ceilings(for: environment).inForce(environment.spec.limits)
        let overflow: @Sendable () async throws -> Void = {
            try await step("apply overflow policy") {
                try await admin.putPolicy(
                    vhost: vhost, name: CeilingPolicies.overflow, pattern: ".*", definition: CeilingPolicies.overflowDefinition,
                    priority: CeilingPolicies.overflowPriority, applyTo: "queues")
            }
        }
        let rest: [@Sendable () async throws -> Void] = [
            { @Sendable in
                try await step("apply stream segment policy") {
                    try await admin.putPolicy(
                        vhost: vhost, name: CeilingPolicies.streamSegments, pattern: ".*", definition: CeilingPolicies.streamSegmentsDefinition(limits),
                        priority: CeilingPolicies.overflowPriority - 1, applyTo: "queues")
                }
            },
            { @Sendable in
                try await step("apply queue ceiling") {
                    try await admin.putOperatorPolicy(
                        vhost: vhost, name: CeilingPolicies.queues, pattern: ".*", definition: CeilingPolicies.queueCeiling(limits),
                        priority: 0, applyTo: "queues")
                }
            },
            { @Sendable in
                try await step("apply queue ceiling") {
                    try await admin.putOperatorPolicy(
                        vhost: vhost, name: CeilingPolicies.streams, pattern: ".*", definition: CeilingPolicies.streamCeiling(limits),
                        priority: -1, applyTo: "queues")
                }
            },
            { @Sendable in
                try await step("apply queue ceiling") {
                    try await admin.putOperatorPolicy(
                        vhost: vhost, name: CeilingPolicies.ownQueues, pattern: CeilingPolicies.ownQueuesPattern,
                        definition: CeilingPolicies.ownQueuesDefinition, priority: 1, applyTo: "queues")
                }
            },
        ]
        if fresh {
            try await concurrently([overflow] + rest + [{ @Sendable in
                try await step("set vhost limits") {
                    try await admin.putVhostLimits(vhost: vhost, ["max-queues": limits.maxQueues, "max-connections": limits.maxConnections])
                }
            }])
        } else {
            try await overflow()
            try await concurrently(rest + [{ @Sendable in try await applyVhostLimits(vhost, limits) }])
        }
    }

    /// Each of the vhost's limits by name, leaving any other limit it has as it is. One after
    /// the other: the broker keeps a vhost's limits as one value that each call reads, changes
    /// and writes back, so two calls at once could lose one.
    func applyVhostLimits(_ vhost: String, _ limits: LimitsInForce) async throws {
        for (name, value) in [("max-queues", limits.maxQueues), ("max-connections", limits.maxConnections)] {
            try await step("set vhost limit") { try await admin.putVhostLimit(vhost: vhost, name: name, value: value) }
        }
    }

    /// The user limits of one of the environment's users.
    func applyUserLimits(_ user: String, in environment: Environment) async throws {
        let limits = ceilings(for: environment).inForce(environment.spec.limits)
        try await concurrently([("max-connections", limits.maxUserConnections), ("max-channels", limits.maxUserChannels)].map { name, value in
            { @Sendable in try await step("set user limit") { try await admin.putUserLimit(user: user, name: name, value: value) } }
        })
    }

    /// Runs `body`, which makes `count` users of the environment, only while that keeps the
    /// environment within its ceiling of users; this process's makers of one environment take
    /// turns, so two rotations at once cannot both take the last place. `leaving` counts the
    /// users the body revokes at once (they make room). Several Warren instances can each let
    /// one through: the ceiling holds to within one maker per instance.
    func withRoomForUsers<T: Sendable>(
        _ count: Int = 1, in environment: Environment, leaving: ([PermissionInfo]) -> Int = { _ in 0 },
        _ body: ([PermissionInfo]) async throws -> T
    ) async throws -> T {
        let key = "users \(environment.vhost)"
        guard await session.localLocks.acquire(key, within: recordLockLease) else {
            throw ProvisioningError(code: .busy, detail: "another change of environment \(environment.name)'s users took too long; try again")
        }
        defer { session.localLocks.release(key) }
        let permissions = try await step("read permissions") { try await admin.permissions(vhost: environment.vhost) }
        let users = permissions.filter { EnvironmentNaming.isUser($0.user, of: environment.vhost) }
        let ceiling = ceilings(for: environment).inForce(environment.spec.limits).maxUsers
        guard users.count - leaving(users) + count <= ceiling else {
            throw ProvisioningError(
                code: .quotaExceeded,
                detail: "environment \(environment.name) has \(users.count) users, the operator's ceiling is \(ceiling) (rotations, roles and bindings together); revoke one first")
        }
        return try await body(permissions)
    }
}

extension Provisioner {
    /// Brings environments whose ceilings on the broker are not today's in line: those made
    /// before ceilings existed, and every one after the operator changed a ceiling. The janitor
    /// calls this each sweep. Three listings (vhost limits, operator policies, user limits),
    /// whatever the number of environments; then work only for the environments that differ.
    /// Nothing is truncated: see `bringUnderCeilings`. Returns how many it brought in line.
    func reconcileCeilings(_ records: [String: EnvironmentRecord]) async throws -> Int {
        async let vhostLimits = step("list vhost limits") { try await admin.vhostLimits() }
        async let policies = step("list operator policies") { try await admin.operatorPolicies() }
        async let userLimits = step("list user limits") { try await admin.userLimits() }
        var queueCeilings: [String: [String: JSONValue]] = [:]
        var ownCeilings = Set<String>()
        var streamCeilings: [String: [String: JSONValue]] = [:]
        for policy in try await policies {
            if policy.name == CeilingPolicies.queues, policy.pattern == ".*" { queueCeilings[policy.vhost] = policy.definition }
            if policy.name == CeilingPolicies.streams, policy.pattern == ".*" { streamCeilings[policy.vhost] = policy.definition }
            if policy.name == CeilingPolicies.ownQueues, policy.definition == CeilingPolicies.ownQueuesDefinition { ownCeilings.insert(policy.vhost) }
        }
        var usersOff = Set<String>()
        for (user, limits) in try await userLimits {
            guard let vhost = EnvironmentNaming.vhost(ofUser: user), let record = records[vhost] else { continue }
            let inForce = ceilings(forTier: record.tier).inForce(record.spec.limits)
            if limits != ["max-connections": inForce.maxUserConnections, "max-channels": inForce.maxUserChannels] { usersOff.insert(vhost) }
        }
        let limits = try await vhostLimits
        var count = 0
        for (vhost, record) in records.sorted(by: { $0.key < $1.key }) where record.state == .ready {
            let inForce = ceilings(forTier: record.tier).inForce(record.spec.limits)
            guard limits[vhost] != ["max-queues": inForce.maxQueues, "max-connections": inForce.maxConnections]
                || queueCeilings[vhost] != CeilingPolicies.queueCeiling(inForce) || !ownCeilings.contains(vhost) || usersOff.contains(vhost)
                // Environments made before streams had ceilings of their own get them here.
                || streamCeilings[vhost] != CeilingPolicies.streamCeiling(inForce)
            else { continue }
            // One environment the broker fails on holds up no other.
            do {
                let brought = try await withCeilingsTurn(vhost) {
                    // Read again under the turn: a PATCH that finished meanwhile changed the record.
                    guard case .valid(let now) = try await self.records.read(vhost), now == record else { return false }
                    try await bringUnderCeilings(Environment(record: record, vhost: vhost))
                    return true
                }
                if brought { count += 1 }
            } catch {
                logger.warning("could not bring an environment under its ceilings; next sweep tries again", metadata: [
                    "vhost": "\(vhost)", "error": "\(error)",
                ])
            }
        }
        return count
    }

    /// This process's turn on an environment's ceilings. A PATCH changes the broker's limits
    /// before it writes the record, and a sweep that compared the two in between would put the
    /// old limits back: a PATCH holds the turn, and the janitor takes it and reads the record
    /// again before it brings an environment in line. Another instance's janitor can still come
    /// between; its next sweep, which then sees the new record, undoes what it did.
    func withCeilingsTurn<T: Sendable>(_ vhost: String, _ body: () async throws -> T) async throws -> T {
        let key = "ceilings \(vhost)"
        guard await session.localLocks.acquire(key, within: recordLockLease) else {
            throw ProvisioningError(code: .busy, detail: "another change of this environment's ceilings took too long; try again")
        }
        defer { session.localLocks.release(key) }
        return try await body()
    }

    /// Puts today's ceilings on an environment that exists. Its queues' own policies first, so
    /// that each says `reject-publish` before a ceiling comes into force: a queue that holds more
    /// than the ceiling then keeps every message and refuses new ones until it drains. Its
    /// users get their limits; Warren's claim queue loses what a tenant may have stored in it
    /// before such queues refused messages (it never holds a message of Warren's).
    func bringUnderCeilings(_ environment: Environment) async throws {
        let vhost = environment.vhost
        try await applyPolicies(environment)
        let users = try await step("read permissions") { try await admin.permissions(vhost: vhost) }
            .map(\.user).filter { EnvironmentNaming.isUser($0, of: vhost) }
        for user in users { try await applyUserLimits(user, in: environment) }
        try await applyCeilings(environment)
        try await records.purgeClaim(vhost)
        logger.notice("environment brought under its ceilings", metadata: ["vhost": "\(vhost)", "users": "\(users.count)"])
    }
}
