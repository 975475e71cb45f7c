import EnvironmentModel
import Logging
package import RabbitManagement
import WireFormat

/// The broker operations provisioning needs. `ManagementClient` is the real one; unit tests
/// use a fake to check ordering and rollback without a broker.
package protocol BrokerAdmin: Sendable {
    func overview() async throws -> Overview
    /// The stream protocol's port, nil when the broker has no stream listener.
    func streamPort() async throws -> Int?
    func whoami() async throws -> WhoAmI
    func vhost(_ name: String) async throws -> VhostInfo?
    func vhosts() async throws -> [VhostInfo]
    /// True when the PUT made the vhost (201).
    @discardableResult
    func putVhost(_ name: String, description: String, tags: [String], defaultQueueType: String?) async throws -> Bool
    func deleteVhost(_ name: String) async throws -> Bool
    /// Deletion protection of a vhost, on RabbitMQ 4.1 and later only (see
    /// `BrokerRelease.protectsVhosts`): while on, a DELETE of the vhost is refused (412).
    func protectVhost(_ name: String) async throws
    /// False when the vhost is absent; lifting no protection is no error.
    @discardableResult
    func unprotectVhost(_ name: String) async throws -> Bool
    func users() async throws -> [UserInfo]
    func putUser(_ name: String, passwordHash: String, tags: [String]) async throws
    func deleteUser(_ name: String) async throws -> Bool
    /// The user's password hash; nil when there is no such user.
    func passwordHash(ofUser name: String) async throws -> String?
    func putPermissions(vhost: String, user: String, configure: String, write: String, read: String) async throws
    func permissions(vhost: String) async throws -> [PermissionInfo]
    func putTopicPermission(vhost: String, user: String, exchange: String, write: String, read: String) async throws
    /// Every user's permissions on every vhost.
    func permissions() async throws -> [PermissionInfo]
    /// True when the PUT made the exchange (201); a 204 does not mean it is equal (see `ManagementClient.putExchange`).
    @discardableResult
    func putExchange(vhost: String, name: String, type: String, durable: Bool, autoDelete: Bool, arguments: [String: JSONValue]) async throws -> Bool
    func exchange(vhost: String, name: String) async throws -> ExchangeInfo?
    /// True when the PUT made the queue (201); a 204 does not mean it is equal (see `ManagementClient.putQueue`).
    @discardableResult
    func putQueue(vhost: String, name: String, durable: Bool, autoDelete: Bool, arguments: [String: JSONValue]) async throws -> Bool
    func queue(vhost: String, name: String) async throws -> QueueInfo?
    func deleteQueue(vhost: String, name: String) async throws -> Bool
    /// Drops the queue's ready messages; false when there is no such queue.
    func purgeQueue(vhost: String, name: String) async throws -> Bool
    /// Whether the queue holds a message right now (one is fetched and requeued); false when
    /// there is no such queue.
    func holdsMessages(vhost: String, name: String) async throws -> Bool
    func bind(vhost: String, exchange: String, queue: String, routingKey: String, arguments: [String: JSONValue]) async throws
    func bindings(vhost: String, exchange: String, queue: String) async throws -> [BindingInfo]
    func putVhostLimit(vhost: String, name: String, value: Int) async throws
    /// Every limit of the vhost at once, replacing any it had.
    func putVhostLimits(vhost: String, _ limits: [String: Int]) async throws
    /// Creates or replaces a policy (priority and apply-to as given).
    func putPolicy(vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String) async throws
    /// False when there was no such policy.
    func deletePolicy(vhost: String, name: String) async throws -> Bool
    /// A user's `max-connections` or `max-channels`.
    func putUserLimit(user: String, name: String, value: Int) async throws
    /// Every user's limits, by user (users without limits are not listed).
    func userLimits() async throws -> [String: [String: Int]]
    /// Every vhost's limits, by vhost (vhosts without limits are not listed).
    func vhostLimits() async throws -> [String: [String: Int]]
    /// Creates or replaces an operator policy: the broker's ceiling, out of tenants' reach.
    func putOperatorPolicy(vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String) async throws
    /// False when there was no such operator policy.
    func deleteOperatorPolicy(vhost: String, name: String) async throws -> Bool
    /// Every operator policy on the broker.
    func operatorPolicies() async throws -> [PolicyInfo]
    /// Users without permissions on any vhost.
    func usersWithoutPermissions() async throws -> [UserInfo]
    /// Deletes the users in one call; absent names are ignored.
    func deleteUsers(_ names: [String]) async throws
    /// Each node's alarms, memory and disk.
    func nodes() async throws -> [NodeInfo]
    /// Queue count, messages and bytes per vhost.
    func queueTotals() async throws -> [String: QueueTotals]
    /// Open connections per vhost.
    func connectionCounts() async throws -> [String: Int]
    /// Every queue of the vhost with its counts and rates (the statistics, which lag); nil when
    /// there is no such vhost.
    func queueStatistics(vhost: String) async throws -> [QueueStatistics]?
    /// A global runtime parameter's value; nil when there is none.
    func globalParameter(_ name: String) async throws -> JSONValue?
    func putGlobalParameter(_ name: String, value: JSONValue) async throws
    /// The global parameters whose names start with `prefix`.
    func globalParameters(prefix: String) async throws -> [String: JSONValue]
    /// The same broker, logging its calls through `logger` (to carry a request id).
    func logging(to logger: Logger) -> any BrokerAdmin
}

extension ManagementClient: BrokerAdmin {
    package func logging(to logger: Logger) -> any BrokerAdmin {
        withLogger(logger)
    }
}
