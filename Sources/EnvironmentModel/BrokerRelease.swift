import Locking

/// A RabbitMQ release as far as Warren's rules tell releases apart ("4.3.6" is 4.3).
public struct BrokerVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// "4.3.6" -> 4.3; what does not parse reads as 0 (older than every rule).
    public init(parsing text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).prefix(2).map { part in
            Int(part.prefix { $0.isASCII && $0.isNumber }) ?? 0
        }
        self.init(major: parts.first ?? 0, minor: parts.count > 1 ? parts[1] : 0)
    }

    public static func < (a: BrokerVersion, b: BrokerVersion) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }

    public var description: String { "\(major).\(minor)" }
}

/// What Warren must know of the broker's release to make the same promise on each. Read once
/// (from the management API's overview) and kept for the life of the process: a broker is not
/// upgraded under a running Warren without its nodes restarting, and a later release only ever
/// adds to what this covers.
package final class BrokerRelease: Sendable {
    private let known = PThreadMutex<BrokerVersion?>(nil)

    private let stream = PThreadMutex<Int??>(nil)

    package init() {}

    /// The stream protocol's port (nil: no stream plugin), read the first time only, like the
    /// release: enabling the plugin on a running broker is seen after Warren restarts.
    package func streamPort(reading: () async throws -> Int?) async throws -> Int? {
        if let known = stream.withLock({ $0 }) { return known }
        let value = try await reading()
        stream.withLock { $0 = .some(value) }
        return value
    }

    /// The release ("4.3.6" -> 4.3); `reading` asks the broker for its version, the first time only.
    package func version(reading: () async throws -> String) async throws -> BrokerVersion {
        if let known = known.withLock({ $0 }) { return known }
        let value = BrokerVersion(parsing: try await reading())
        known.withLock { $0 = value }
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

    /// RabbitMQ 4.1 can protect a vhost from deletion (`POST /api/vhosts/{vhost}/deletion/protection`,
    /// lifted by a DELETE of the same path): the broker then refuses to delete it, whoever asks
    /// (a management `DELETE` answers 412, `rabbitmqctl delete_vhost` fails). Before 4.1 the path
    /// does not exist (405), and a protected environment is protected by Warren alone: Warren
    /// refuses to delete it, and nothing stops a delete made on the broker itself.
    package static func protectsVhosts(_ version: BrokerVersion) -> Bool {
        version >= BrokerVersion(major: 4, minor: 1)
    }

    /// Super streams (an exchange routing to partition streams, which stream clients look up
    /// through the stream protocol's `partitions` and `route` commands) came in RabbitMQ 3.11.
    static let superStreams = BrokerVersion(major: 3, minor: 11)
}

extension EnvironmentSpec.Queue {
    /// The queue as this release makes it: each setting's release rule (`QueueSetting.release`)
    /// applied in the table's order; `refused` names the first setting the queue sets that the
    /// release does not take, and the release it needs (nil when there is none).
    func explicit(for version: BrokerVersion) -> (queue: EnvironmentSpec.Queue, refused: (setting: String, needs: BrokerVersion)?) {
        var queue = self
        for setting in QueueSetting.all {
            switch setting.release {
            case .every: break
            case .adjusts(let adjust): adjust(&queue, version)
            case .since(let needed) where version < needed && setting.isSet(on: queue): return (queue, (setting.field, needed))
            case .since: break
            }
        }
        return (queue, nil)
    }
}

extension [EnvironmentSpec.Queue] {
    /// The queues as this release makes them, or the refusal (a 400) naming each queue's
    /// field ("queues[0].consumer_timeout_ms") that this release does not take.
    func explicit(for version: BrokerVersion) throws -> [EnvironmentSpec.Queue] {
        let made = map { $0.explicit(for: version) }
        guard let first = made.lazy.compactMap(\.refused).first else { return made.map(\.queue) }
        let fields = made.enumerated().compactMap { index, made in
            made.refused?.setting == first.setting ? "queues[\(index)].\(first.setting)" : nil
        }
        throw ProvisioningError(
            code: .unsupportedByRelease,
            detail: "\(first.setting) needs RabbitMQ \(first.needs) or later; this broker runs RabbitMQ \(version)",
            fields: fields, fieldReason: "needs RabbitMQ \(first.needs) or later; this broker runs RabbitMQ \(version)")
    }
}

extension EnvironmentSpec {
    /// The spec with what the broker's release decides written in (see `Queue.explicit`), so
    /// the record, the answer and its notes say what the broker will do.
    package func explicit(for version: BrokerVersion) throws -> EnvironmentSpec {
        var spec = self
        if !superStreams.isEmpty, version < BrokerRelease.superStreams {
            let needs = "needs RabbitMQ \(BrokerRelease.superStreams) or later; this broker runs RabbitMQ \(version)"
            throw ProvisioningError(code: .unsupportedByRelease, detail: "super_streams \(needs)", fields: ["super_streams"], fieldReason: needs)
        }
        spec.queues = try queues.explicit(for: version)
        return spec
    }
}

extension TopologyAddition {
    /// The addition's queues as this release makes them, so they compare with the stored spec.
    package func explicit(for version: BrokerVersion) throws -> TopologyAddition {
        var addition = self
        addition.queues = try queues.explicit(for: version)
        return addition
    }
}
