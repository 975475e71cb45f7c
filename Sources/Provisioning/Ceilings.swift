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

    public init(
        connections: Int = 100, queues: Int = 32, environmentBytes: Int = 512 << 20, queueLength: Int = 100_000,
        userConnections: Int = 100, userChannels: Int = 128, users: Int = 16, rotationsPerMinute: Int = 60
    ) {
        self.connections = connections
        self.queues = queues
        self.environmentBytes = environmentBytes
        self.queueLength = queueLength
        self.userConnections = userConnections
        self.userChannels = userChannels
        self.users = users
        self.rotationsPerMinute = rotationsPerMinute
    }
}
