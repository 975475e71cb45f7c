import BrokerState
import EnvironmentModel
internal import RabbitManagement

/// One queue of an environment as an autoscaler reads it: the broker's statistics, which lag by
/// its stats interval (5 s by default). A queue declared in the last seconds has no figures yet,
/// and shows 0.
public struct QueueDepth: Sendable, Hashable {
    public var name: String
    public var messagesReady: Int
    public var messagesUnacknowledged: Int
    public var consumers: Int
    /// Messages per second published to the queue, and delivered from it (to consumers or fetched).
    public var publishRate: Double
    public var deliverRate: Double

    public init(
        name: String, messagesReady: Int, messagesUnacknowledged: Int, consumers: Int, publishRate: Double, deliverRate: Double
    ) {
        self.name = name
        self.messagesReady = messagesReady
        self.messagesUnacknowledged = messagesUnacknowledged
        self.consumers = consumers
        self.publishRate = publishRate
        self.deliverRate = deliverRate
    }
}

extension Provisioner {
    /// Every queue of the team's environment with its counts and rates, by name: Warren's
    /// queues, their dead-letter queues and the queues the tenant declared itself, never Warren's
    /// own (`warren.claim`; tenants cannot declare a `warren.` name). Nil when the team has no
    /// such environment.
    ///
    /// Autoscalers poll this every few seconds, many at once, so it costs two management calls
    /// and nothing else, made at the same time:
    /// - the vhost's record (`GET /api/vhosts/{vhost}`: about 1 ms of the broker's CPU, whatever
    ///   the broker holds; bench/queue_depth.py), which is what proves the
    ///   environment is the team's. The vhost's name carries the team of the caller's token
    ///   (`warren.{team}.{name}`, and neither part may hold a dot), so nothing of another team's
    ///   can be reached by any id; the read is needed only to refuse a vhost that is not a Warren
    ///   environment (a description that is no record), which every other route answers 404. A
    ///   record that fails validation is still under the team's own name, and is shown as GET
    ///   shows it (GET lists its users, DELETE with force removes it): the figures say nothing
    ///   of what the record holds. GET's other reads (exchanges, queues, bindings, permissions)
    ///   are not made: they judge the environment's health, which the figures do not need.
    /// - the listing of that vhost's queues (`QueueStatistics`), which is thrown away unread
    ///   when the record says no: it is of a vhost under the caller's own team's name anyway.
    ///   It is the dearer of the two: the broker walks every queue it holds to list one vhost's
    ///   (4 ms of its CPU with 3,000 queues on RabbitMQ 4.3; docs/rabbitmq-releases.md).
    /// The team index would be a cheaper proof (one global parameter) but cannot tell a Warren
    /// environment from another vhost of that name, and a cache of proofs would be state that
    /// replicas do not share, which Warren keeps none of.
    public func queueDepths(team: String, name: String) async throws -> [QueueDepth]? {
        let vhost = EnvironmentNaming.vhost(team: team, name: name)
        async let listing = step("read queue statistics") { try await admin.queueStatistics(vhost: vhost) }
        switch try await records.read(vhost) {
        case .absent, .foreign:
            return nil
        case .invalid(let reason):
            logger.error("environment record fails validation", metadata: ["vhost": "\(vhost)", "reason": "\(reason)"])
        case .valid:
            break
        }
        // No vhost for the listing, though the record was read: a DELETE removed it meanwhile.
        guard let queues = try await listing else { return nil }
        return queues
            .filter { !$0.name.hasPrefix(EnvironmentNaming.reservedResourcePrefix) }
            .map {
                QueueDepth(
                    name: $0.name, messagesReady: $0.messagesReady, messagesUnacknowledged: $0.messagesUnacknowledged,
                    consumers: $0.consumers, publishRate: $0.publishRate, deliverRate: $0.deliverRate)
            }
            .sorted { $0.name < $1.name }
    }
}
