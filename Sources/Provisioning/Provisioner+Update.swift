import RabbitManagement

/// Growing an environment in place.
public struct TopologyAddition: Sendable {
    public var queues: [EnvironmentSpec.Queue]
    public var bindings: [EnvironmentSpec.Binding]
    /// Replaces the limits when given.
    public var limits: EnvironmentSpec.Limits?

    public init(queues: [EnvironmentSpec.Queue] = [], bindings: [EnvironmentSpec.Binding] = [], limits: EnvironmentSpec.Limits? = nil) {
        self.queues = queues
        self.bindings = bindings
        self.limits = limits
    }
}

extension Provisioner {
    /// The spec with the addition merged in, or a conflict when it would change a queue that
    /// exists: the broker cannot change a queue's type or arguments in place, and Warren never
    /// deletes a queue that may hold messages to make it anew.
    public static func merge(_ addition: TopologyAddition, into spec: EnvironmentSpec) throws -> EnvironmentSpec {
        var merged = spec
        for queue in addition.queues {
            if let existing = spec.queues.first(where: { $0.name == queue.name }) {
                guard existing == queue else {
                    throw ProvisioningError(
                        code: .conflict,
                        detail: "queue \(queue.name) exists with other settings; the broker cannot change a queue's type or arguments in place, and Warren does not delete a queue that may hold messages: add a queue with a new name instead",
                        fields: ["queues[\(queue.name)]"])
                }
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

    /// Adds queues and bindings (and sets limits) on an existing environment. Validation of the
    /// merged spec is the caller's (it names the request's fields). Consumer users are granted
    /// the new queues. The record takes the addition merged into the record as it is at the
    /// moment of the write, so a change made meanwhile (another PATCH, a scheduled revocation)
    /// survives. Nil when the environment does not exist.
    public func update(team: String, name: String, adding addition: TopologyAddition) async throws -> EnvironmentHealth? {
        try await measured("update") {
            guard let (environment, record) = try await loadForChange(team: team, name: name) else { return nil }
            return try await whileItExists(environment, incarnation: record.incarnation) {
                try await grow(environment, record: record, adding: addition)
            }
        }
    }

    private func grow(_ environment: Environment, record: EnvironmentRecord, adding addition: TopologyAddition) async throws -> EnvironmentHealth? {
        let merged = try Self.merge(addition, into: record.spec)
        var grown = environment
        grown.spec = merged
        // Limits first: the new queues may need the room a raised (or removed) max-queues
        // gives, and a lowered one was checked against the grown topology already.
        if merged.limits != record.spec.limits {
            for (limit, value) in [("max-queues", merged.limits.maxQueues), ("max-connections", merged.limits.maxConnections)] {
                try await step("set vhost limit") { try await admin.putVhostLimit(vhost: grown.vhost, name: limit, value: value ?? -1) }
            }
        }
        try await declareTopology(grown)
        let consumers = try await step("read permissions") { try await admin.permissions(vhost: grown.vhost) }
            .filter { EnvironmentNaming.isUser($0.user, of: grown.vhost) && Role.of($0) == .consumer }
        for consumer in consumers { try await grant(.consumer, to: consumer.user, in: grown) }
        try await records.change(grown.vhost, incarnation: record.incarnation, step: "record update") {
            $0.spec = try Self.merge(addition, into: $0.spec)
        }
        logger.info("environment updated", metadata: ["vhost": "\(grown.vhost)", "queues": "\(merged.queues.count)"])
        return try await inspect(team: environment.team, name: environment.name)
    }
}
