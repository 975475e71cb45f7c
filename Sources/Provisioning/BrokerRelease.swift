import Synchronization

/// What Warren must know of the broker's release to make the same promise on each. Read once
/// (from the management API's overview) and kept for the life of the process: a broker is not
/// upgraded under a running Warren without its nodes restarting, and a later release only ever
/// adds to what this covers.
final class BrokerRelease: Sendable {
    private let major = Mutex<Int?>(nil)

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
}

extension EnvironmentSpec {
    /// The spec with what the broker would do unasked written in: a quorum queue's default
    /// delivery limit on releases that have one.
    func explicit(forMajorVersion major: Int) -> EnvironmentSpec {
        guard let limit = BrokerRelease.quorumDefaultDeliveryLimit(major: major) else { return self }
        var spec = self
        for index in spec.queues.indices where spec.queues[index].type == .quorum && spec.queues[index].deliveryLimit == nil {
            spec.queues[index].deliveryLimit = limit
        }
        return spec
    }
}
