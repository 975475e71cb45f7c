/// The operator's ceilings: the most any one environment, user or queue may take of what every
/// team shares on the broker (its sockets, memory, disk, metadata store). Warren applies them
/// to every environment, those made before they existed included (the janitor brings those in
/// line); a request may ask for less, never more. Defaults suit a shared node of a few GiB;
/// the docs size them against the broker's memory watermark and disk limit.
public struct Ceilings: Sendable, Hashable {
    /// Client connections per environment (the vhost's `max-connections`).
    public var connections: Int
    /// Queues per environment, tenants' own included (the vhost's `max-queues`).
    public var queues: Int
    /// Bytes of messages per environment: each queue may hold this divided by the
    /// environment's queue limit (an operator policy's `max-length-bytes`).
    public var environmentBytes: Int
    /// Messages per queue (an operator policy's `max-length`).
    public var queueLength: Int
    /// Connections per user Warren makes (a user limit).
    public var userConnections: Int
    /// Channels per user Warren makes, across its connections (a user limit).
    public var userChannels: Int
    /// Users per environment: every role's, every rotation's and every binding's together.
    public var users: Int
    /// Credentials a team may issue per minute, across its environments (per Warren instance).
    public var rotationsPerMinute: Int
    /// Requests that read the broker a team may make per minute, across its environments (per
    /// Warren instance): GETs of environments, their queue depths and KEDA manifests. Each
    /// costs management API calls, which every team shares; 6,000 (100 a second) serves 500
    /// autoscalers polling every 5 s.
    public var readsPerMinute: Int

    public init(
        connections: Int = 100, queues: Int = 64, environmentBytes: Int = 1 << 30, queueLength: Int = 100_000,
        userConnections: Int = 100, userChannels: Int = 128, users: Int = 16, rotationsPerMinute: Int = 60,
        readsPerMinute: Int = 6_000
    ) {
        self.connections = connections
        self.queues = queues
        self.environmentBytes = environmentBytes
        self.queueLength = queueLength
        self.userConnections = userConnections
        self.userChannels = userChannels
        self.users = users
        self.rotationsPerMinute = rotationsPerMinute
        self.readsPerMinute = readsPerMinute
    }
}

extension Ceilings {
    /// One ceiling as an operator sets it: its name (`WARREN_CEILING_{NAME}` upper-cased, or a
    /// blueprint's `ceilings.{name}`), and the values it may take.
    public struct Setting: Sendable {
        public var name: String
        public var key: WritableKeyPath<Ceilings, Int> & Sendable
        public var range: ClosedRange<Int>
        /// Per team rather than per environment: a blueprint cannot set it.
        public var perTeam = false
    }

    public static let settings: [Setting] = [
        Setting(name: "connections", key: \.connections, range: 1...100_000),
        // The claim queue and one queue of the environment's own, at the least.
        Setting(name: "queues", key: \.queues, range: 2...10_000),
        Setting(name: "environment_bytes", key: \.environmentBytes, range: EnvironmentSpec.Limits.minimumBytes...(1 << 50)),
        Setting(name: "queue_length", key: \.queueLength, range: 1...100_000_000),
        Setting(name: "user_connections", key: \.userConnections, range: 1...100_000),
        Setting(name: "user_channels", key: \.userChannels, range: 1...65_535),
        // An environment's create makes up to three users (full, producer, consumer).
        Setting(name: "users", key: \.users, range: 3...100_000),
        Setting(name: "rotations_per_minute", key: \.rotationsPerMinute, range: 1...100_000, perTeam: true),
        Setting(name: "reads_per_minute", key: \.readsPerMinute, range: 1...10_000_000, perTeam: true),
    ]
}

/// The limits an environment has on the broker: what it asked for, never above the ceilings.
/// This is what answers show and what the broker enforces.
public struct LimitsInForce: Sendable, Hashable {
    public var maxQueues: Int
    public var maxConnections: Int
    public var maxBytes: Int
    /// Each queue's share: `maxBytes / maxQueues` (an operator policy's `max-length-bytes`).
    public var maxQueueBytes: Int
    public var maxQueueLength: Int
    public var maxUsers: Int
    public var maxUserConnections: Int
    public var maxUserChannels: Int
}

extension Ceilings {
    /// What the broker enforces for an environment that asked for `limits`. Asked values are
    /// capped here too: an environment made before a ceiling was lowered (or before ceilings
    /// existed) gets the ceiling, never what it once asked.
    public func inForce(_ limits: EnvironmentSpec.Limits) -> LimitsInForce {
        let maxQueues = Swift.max(1, Swift.min(limits.maxQueues ?? queues, queues))
        let maxConnections = Swift.min(limits.maxConnections ?? connections, connections)
        let maxBytes = Swift.min(limits.maxBytes ?? environmentBytes, environmentBytes)
        return LimitsInForce(
            maxQueues: maxQueues, maxConnections: maxConnections, maxBytes: maxBytes,
            maxQueueBytes: maxBytes / maxQueues, maxQueueLength: queueLength, maxUsers: users,
            maxUserConnections: Swift.min(userConnections, maxConnections), maxUserChannels: userChannels)
    }

    /// What in `spec` asks for more than a ceiling allows, each named with the ceiling.
    /// "Unlimited" cannot be asked for: a limit left out is the ceiling.
    /// With `limitsAsked` false (a PATCH without `limits`), the limits the environment already
    /// has are not the request's to answer for: those above a ceiling are capped in force.
    public func problems(in spec: EnvironmentSpec, limitsAsked: Bool = true) -> [(field: String, reason: String)] {
        var problems: [(field: String, reason: String)] = []
        let needed = Topology(spec).queueCount
        let limits = limitsAsked ? spec.limits : EnvironmentSpec.Limits()
        if let asked = limits.maxQueues, asked > queues {
            problems.append(("limits.max_queues", "must be at most \(queues), the operator's ceiling of queues per environment"))
        } else if needed > queues {
            problems.append(("queues", "need \(needed) queues (dead-letter queues and Warren's claim queue included), more than the operator's ceiling of \(queues) per environment"))
        }
        if let asked = limits.maxConnections, asked > connections {
            problems.append(("limits.max_connections", "must be at most \(connections), the operator's ceiling of connections per environment"))
        }
        if let asked = limits.maxBytes, asked > environmentBytes {
            problems.append(("limits.max_bytes", "must be at most \(environmentBytes), the operator's ceiling of message bytes per environment"))
        }
        for (index, queue) in spec.queues.enumerated() {
            if let asked = queue.maxLength, asked > queueLength {
                problems.append(("queues[\(index)].max_length", "must be at most \(queueLength), the operator's ceiling of messages per queue"))
            }
            let share = inForce(limits).maxQueueBytes
            if let asked = queue.maxLengthBytes, asked > share {
                problems.append(("queues[\(index)].max_length_bytes", "must be at most \(share), each queue's share of the environment's bytes (limits.max_queue_bytes)"))
            }
        }
        return problems
    }
}
