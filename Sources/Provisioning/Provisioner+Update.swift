import BrokerState
import EnvironmentModel
internal import RabbitManagement

/// Growing an environment in place, and changing the settings of its queues that policies hold.
extension Provisioner {
    /// The spec with the addition merged in. A queue that exists takes the settings given (the
    /// queue object states the queue whole: fields left out take their defaults). Only what a
    /// policy holds may change (`Topology.policySettings`); a change of a setting fixed after
    /// creation (`QueueSetting.fixedAfterCreation`: type, max_priority, single_active_consumer)
    /// is a conflict: they are queue arguments, which the broker cannot change in place, and
    /// Warren never deletes a queue that may hold messages to make it anew.
    public static func merge(_ addition: TopologyAddition, into spec: EnvironmentSpec) throws -> EnvironmentSpec {
        var merged = spec
        for queue in addition.queues {
            if let index = merged.queues.firstIndex(where: { $0.name == queue.name }) {
                let existing = merged.queues[index]
                let fixed = existing.fixedFields(differingFrom: queue)
                guard fixed.isEmpty else {
                    throw ProvisioningError(
                        code: .conflict,
                        detail: "queue \(queue.name) exists with another \(fixed.joined(separator: ", ")); the broker cannot change a queue's \(Self.fixedSettings) in place, and Warren does not delete a queue that may hold messages: add a queue with a new name instead",
                        fields: fixed.map { "queues[\(queue.name)].\($0)" }, fieldReason: "a queue argument: cannot change on a queue that exists")
                }
                merged.queues[index] = queue
            } else {
                merged.queues.append(queue)
            }
        }
        for binding in addition.bindings where !merged.bindings.contains(binding) {
            merged.bindings.append(binding)
        }
        if let limits = addition.limits { merged.limits = limits }
        return merged
    }

    /// "type, max_priority or single_active_consumer": the settings fixed after creation.
    static let fixedSettings: String = {
        let fields = QueueSetting.all.filter(\.fixedAfterCreation).map(\.field)
        return fields.count < 2 ? fields.joined() : "\(fields.dropLast().joined(separator: ", ")) or \(fields.last ?? "")"
    }()

    /// Adds queues and bindings (and sets limits) on an existing environment. Validation of the
    /// merged spec is the caller's (it names the request's fields). Consumer users are granted
    /// the new queues, producer users the new streams. The record takes the addition merged into the record as it is at the
    /// moment of the write, so a change made meanwhile (another PATCH, a scheduled revocation)
    /// survives. Nil when the environment does not exist.
    public func update(team: String, name: String, adding addition: TopologyAddition) async throws -> EnvironmentHealth? {
        try await measured("update") {
            guard let (environment, record) = try await loadForChange(team: team, name: name) else { return nil }
            return try await whileItExists(environment, incarnation: record.incarnation) {
                try await withCeilingsTurn(environment.vhost) { try await grow(environment, record: record, adding: addition) }
            }
        }
    }

    private func grow(_ environment: Environment, record: EnvironmentRecord, adding addition: TopologyAddition) async throws -> EnvironmentHealth? {
        let addition = try await explicit(addition)
        let merged = try Self.merge(addition, into: record.spec)
        var grown = environment
        grown.spec = merged
        try await refuseArgumentHeldChanges(from: record.spec, to: merged, in: grown.vhost)
        // Limits first: the new queues may need the room a raised (or removed) max-queues
        // gives, and a lowered one was checked against the grown topology already.
        if merged.limits != record.spec.limits {
            try await applyVhostLimits(grown.vhost, ceilings(for: grown).inForce(merged.limits))
        }
        try await declareTopology(grown)
        try await removeEmptiedPolicies(from: record.spec, to: merged, in: grown.vhost)
        // Consumers read the new queues; producers write the new streams (the stream protocol).
        let narrowed = try await step("read permissions") { try await admin.permissions(vhost: grown.vhost) }
            .filter { EnvironmentNaming.isUser($0.user, of: grown.vhost) && Role.of($0) != .full }
        for user in narrowed { try await grant(Role.of(user), to: user.user, in: grown) }
        try await records.change(grown.vhost, incarnation: record.incarnation, step: "record update") {
            $0.spec = try Self.merge(addition, into: $0.spec)
        }
        logger.info("environment updated", metadata: ["vhost": "\(grown.vhost)", "queues": "\(merged.queues.count)"])
        return try await inspect(team: environment.team, name: environment.name)
    }
}

extension Provisioner {
    /// A queue declared before Warren used policies holds its settings as arguments, which
    /// override a policy: a change to one of those would be accepted and never take effect, so
    /// it is refused, before anything changes, naming the fields.
    func refuseArgumentHeldChanges(from old: EnvironmentSpec, to new: EnvironmentSpec, in vhost: String) async throws {
        let deadLetterExchange = Topology.deadLetterExchange(of: new)
        for queue in new.queues {
            guard let before = old.queues.first(where: { $0.name == queue.name }), before != queue,
                let info = try await step("read queue", { try await admin.queue(vhost: vhost, name: queue.name) })
            else { continue }
            let held = Topology.argumentHeldChanges(from: before, to: queue, arguments: info.arguments, deadLetterExchange: deadLetterExchange)
            guard held.isEmpty else {
                throw ProvisioningError(
                    code: .conflict,
                    detail: "queue \(queue.name) was declared before Warren kept these settings in policies: it holds \(held.joined(separator: ", ")) as queue arguments, which the broker cannot change in place and which would override a policy; add a queue with a new name instead",
                    fields: held.map { "queues[\(queue.name)].\($0)" },
                    fieldReason: "held as a queue argument by this queue (declared before Warren used policies): cannot change in place")
            }
        }
    }

    /// A queue whose policy settings were all removed keeps no policy (the broker refuses an
    /// empty one): its old policy is deleted, after the new topology is in place.
    func removeEmptiedPolicies(from old: EnvironmentSpec, to new: EnvironmentSpec, in vhost: String) async throws {
        let kept = Set(Topology(new).policies.map(\.name))
        for policy in Topology(old).policies where !kept.contains(policy.name) {
            _ = try await step("remove queue policy") { try await admin.deletePolicy(vhost: vhost, name: policy.name) }
        }
    }
}
