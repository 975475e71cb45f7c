import Locking

/// What Warren must know of the broker's release to make the same promise on each. Read once
/// (from the management API's overview) and kept for the life of the process: a broker is not
/// upgraded under a running Warren without its nodes restarting, and a later release only ever
/// adds to what this covers.
final class BrokerRelease: Sendable {
    private let major = PThreadMutex<Int?>(nil)

    /// The release's major version ("4.3.6" -> 4).
    func majorVersion(from admin: any BrokerAdmin) async throws -> Int {
        if let known = major.withLock({ $0 }) { return known }
        let version = try await admin.overview().rabbitmqVersion
        let value = Int(version.prefix { $0.isASCII && $0.isNumber }) ?? 0
        major.withLock { $0 = value }
        return value
    }

    /// RabbitMQ 4.0 gave quorum queues a delivery limit of 20 when none is set: past it a
    /// message is dead-lettered, or dropped without a dead-letter target. Before 4.0 there was
    /// none. Warren writes the limit into the spec where the broker has one, so the answer (and
    /// its notes) say what the broker will do rather than leave it implicit.
    static func quorumDefaultDeliveryLimit(major: Int) -> Int? {
        major >= 4 ? 20 : nil
    }

    /// Quorum queues take message priorities from RabbitMQ 4.0 (two levels: 5 and above is
    /// delivered first); before, only classic queues do.
    static func quorumPriorities(major: Int) -> Bool {
        major >= 4
    }
}

extension EnvironmentSpec.Queue {
    /// The queue as this release makes it: classic where priorities need one; a quorum queue's
    /// default delivery limit written in where the release has one.
    func explicit(forMajorVersion major: Int) -> EnvironmentSpec.Queue {
        var queue = self
        if queue.maxPriority != nil, queue.type == .quorum, !BrokerRelease.quorumPriorities(major: major) { queue.type = .classic }
        if queue.type == .quorum, queue.deliveryLimit == nil { queue.deliveryLimit = BrokerRelease.quorumDefaultDeliveryLimit(major: major) }
        return queue
    }
}

extension EnvironmentSpec {
    /// The spec with what the broker's release decides written in (see `Queue.explicit`), so
    /// the record, the answer and its notes say what the broker will do.
    func explicit(forMajorVersion major: Int) -> EnvironmentSpec {
        var spec = self
        spec.queues = queues.map { $0.explicit(forMajorVersion: major) }
        return spec
    }
}

extension TopologyAddition {
    /// The addition's queues as this release makes them, so they compare with the stored spec.
    func explicit(forMajorVersion major: Int) -> TopologyAddition {
        var addition = self
        addition.queues = queues.map { $0.explicit(forMajorVersion: major) }
        return addition
    }
}
