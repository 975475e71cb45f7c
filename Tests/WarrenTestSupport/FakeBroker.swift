@testable import BrokerState
@testable import EnvironmentModel
import Locking
import Logging
@testable import Provisioning
import RabbitManagement
import WireFormat

/// An in-memory broker behind `BrokerAdmin`, recording every call and able to fail the k-th
/// one, so ordering and rollback can be checked without RabbitMQ. It mimics the behaviours the
/// provisioner relies on: a new vhost reports `running` only on the second read, deleting a
/// vhost deletes everything in it (but not users), deleting a user deletes its permissions.
///
/// Shared by the Provisioning and WarrenAPI tests, so the fake is written once: the API's tests
/// run `/v1` end to end over it, and its unreachable mode stands in for a broker that is down.
public final class FakeBroker: BrokerAdmin, Sendable {
    public struct State {
        public var vhosts: [String: VhostInfo] = [:]
        public var vhostReads: [String: Int] = [:]
        public var users: [String: String] = [:]  // name -> password hash
        public var permissions: [String: Set<String>] = [:]  // vhost -> users
        public var grants: [String: PermissionInfo] = [:]  // "vhost/user" -> the regexes granted
        public var topicGrants: [String: String] = [:]  // "vhost/user/exchange" -> the write regex
        public var exchanges: [String: ExchangeInfo] = [:]  // "vhost/name"
        public var queues: [String: QueueInfo] = [:]
        public var bindings: [String: BindingInfo] = [:]  // "vhost/exchange/queue/key"
        public var limits: [String: Int] = [:]  // "vhost/name"
        public var policies: [String: [String: JSONValue]] = [:]  // "vhost/name" -> definition
        public var operatorPolicies: [String: PolicyInfo] = [:]  // "vhost/name"
        public var userLimits: [String: [String: Int]] = [:]  // user -> name -> value
        public var globalParameters: [String: JSONValue] = [:]
        /// Queues ("vhost/name") holding a message too recent to be in the statistics yet.
        public var recentMessages: Set<String> = []
        public var calls: [String] = []
        public var failAt: Int?
        public var failure = ManagementError(code: .brokerFailure, status: 500, summary: "management API answered 500")
        /// When set, every call is recorded and then refused as if the management API could not
        /// be reached: a request that should be refused before the broker leaves `calls` empty.
        public var unreachable = false
        /// Calls by name ("PUT vhost") whose next occurrence fails with the error given.
        public var failNext: [String: ManagementError] = [:]
    }

    /// A broker holding nothing; `unreachable` refuses every call (see `State.unreachable`).
    public init(unreachable: Bool = false) {
        state.withLock { $0.unreachable = unreachable }
    }

    public let state = PThreadMutex(State())
    /// When set, runs the closure on the state at the k-th call from the time it is set (1-based),
    /// before that call: something else changing the broker between two of our calls.
    public let onCall = PThreadMutex<(Int, @Sendable (inout State) -> Void)?>(nil)
    /// When set, the claim queue is already held by this record (another Warren won the race).
    public let claimConflict = PThreadMutex<EnvironmentRecord?>(nil)
    /// The user the fake's callers make their calls as (what most suites name their service user).
    public let actingUser = "warren-admin"
    /// The release the fake answers to as.
    public let version = PThreadMutex("3.10.8")

    /// Makes the k-th call from now (1-based) throw `error`.
    public func fail(call k: Int, with error: ManagementError? = nil) {
        state.withLock {
            $0.failAt = $0.calls.count + k
            if let error { $0.failure = error }
        }
    }

    /// Makes the next call named `call` ("POST vhost protection") throw `error` (a 500 by default).
    public func fail(next call: String, with error: ManagementError? = nil) {
        state.withLock { $0.failNext[call] = error ?? ManagementError(code: .brokerFailure, status: 500, summary: "management API answered 500") }
    }

    public var calls: [String] { state.withLock { $0.calls } }

    /// How many calls anyone made, refused or not. Counted under `state`'s PThreadMutex, which
    /// ThreadSanitizer sees: readiness asks two calls at once, and a counter under
    /// `Synchronization.Mutex` was reported as a race (see PThreadMutex).
    public var attempts: Int { state.withLock { $0.calls.count } }

    /// Records a call and throws when it is the one set to fail or the broker is unreachable.
    private func record(_ call: String) throws {
        let hook = onCall.withLock { hook -> (@Sendable (inout State) -> Void)? in
            guard let (count, body) = hook else { return nil }
            if count <= 1 { hook = nil; return body }
            hook = (count - 1, body)
            return nil
        }
        if let hook { state.withLock { hook(&$0) } }
        try state.withLock { state in
            state.calls.append(call)
            if state.unreachable { throw ManagementError(code: .unreachable, summary: "management API unreachable") }
            if state.failAt == state.calls.count { throw state.failure }
            if let error = state.failNext.removeValue(forKey: call) { throw error }
        }
    }

    public func overview() async throws -> Overview {
        try record("overview")
        return Overview(rabbitmqVersion: version.withLock { $0 })
    }

    /// The fake's stream listener (nil: no stream plugin).
    public let streamListener = PThreadMutex<Int?>(5552)

    public func streamPort() async throws -> Int? {
        try record("overview listeners")
        return streamListener.withLock { $0 }
    }

    public func whoami() async throws -> WhoAmI {
        try record("whoami")
        return WhoAmI(name: "guest", tags: ["administrator"])
    }

    public func vhost(_ name: String) async throws -> VhostInfo? {
        try record("GET vhost")
        return state.withLock { state in
            guard var info = state.vhosts[name] else { return nil }
            state.vhostReads[name, default: 0] += 1
            info.clusterState = ["rabbit@fake": state.vhostReads[name]! >= 2 ? "running" : "starting"]
            return info
        }
    }

    public func vhosts() async throws -> [VhostInfo] {
        try record("GET vhosts")
        return state.withLock { Array($0.vhosts.values) }
    }

    @discardableResult
    public func putVhost(_ name: String, description: String, tags: [String], defaultQueueType: String?) async throws -> Bool {
        try record("PUT vhost")
        return state.withLock {
            let created = $0.vhosts[name] == nil
            // As RabbitMQ 4.1+: a PUT keeps the vhost's deletion protection.
            let protected = $0.vhosts[name]?.protectedFromDeletion ?? (releaseProtectsVhosts ? false : nil)
            $0.vhosts[name] = VhostInfo(name: name, description: description, tags: tags, protectedFromDeletion: protected)
            // As the management API: the user that makes a vhost gets every permission in it.
            if created {
                $0.permissions[name, default: []].insert(actingUser)
                $0.grants["\(name)/\(actingUser)"] = PermissionInfo(user: actingUser, vhost: name, configure: ".*", write: ".*", read: ".*")
            }
            return created
        }
    }

    /// Whether the release the fake answers to as has vhost deletion protection (4.1 and later).
    private var releaseProtectsVhosts: Bool {
        BrokerVersion(parsing: version.withLock { $0 }) >= BrokerVersion(major: 4, minor: 1)
    }

    public func protectVhost(_ name: String) async throws {
        try record("POST vhost protection")
        try setProtection(name, true)
    }

    public func unprotectVhost(_ name: String) async throws -> Bool {
        try record("DELETE vhost protection")
        do {
            try setProtection(name, false)
            return true
        } catch let error as ManagementError where error.code == .notFound {
            return false
        }
    }

    /// As the releases answer: 405 before 4.1 (no such path), 404 for an absent vhost.
    private func setProtection(_ name: String, _ protected: Bool) throws {
        guard releaseProtectsVhosts else {
            throw ManagementError(code: .unexpectedStatus, status: 405, summary: "management API answered 405 for vhost deletion protection")
        }
        try state.withLock { state in
            guard state.vhosts[name] != nil else {
                throw ManagementError(code: .notFound, status: 404, summary: "management API answered 404 for vhost deletion protection")
            }
            state.vhosts[name]?.protectedFromDeletion = protected
        }
    }

    public func deleteVhost(_ name: String) async throws -> Bool {
        try record("DELETE vhost")
        return try state.withLock { state in
            if state.vhosts[name]?.protectedFromDeletion == true {
                throw ManagementError(code: .conflict, status: 412, summary: "management API answered 412 for DELETE vhost")
            }
            guard state.vhosts.removeValue(forKey: name) != nil else { return false }
            state.permissions[name] = nil
            state.exchanges = state.exchanges.filter { $0.value.vhost != name }
            state.queues = state.queues.filter { $0.value.vhost != name }
            state.bindings = state.bindings.filter { $0.value.vhost != name }
            state.policies = state.policies.filter { !$0.key.hasPrefix(name + "/") }
            state.operatorPolicies = state.operatorPolicies.filter { $0.value.vhost != name }
            state.limits = state.limits.filter { !$0.key.hasPrefix(name + "/") }
            return true
        }
    }

    public func users() async throws -> [UserInfo] {
        try record("GET users")
        return state.withLock { $0.users.keys.map { UserInfo(name: $0) } }
    }

    public func putUser(_ name: String, passwordHash: String, tags: [String]) async throws {
        try record("PUT user")
        state.withLock { $0.users[name] = passwordHash }
    }

    public func deleteUser(_ name: String) async throws -> Bool {
        try record("DELETE user")
        return state.withLock { state in
            guard state.users.removeValue(forKey: name) != nil else { return false }
            for vhost in state.permissions.keys { state.permissions[vhost]?.remove(name) }
            state.topicGrants = state.topicGrants.filter { $0.key.split(separator: "/").dropFirst().first.map(String.init) != name }
            state.userLimits[name] = nil
            return true
        }
    }

    public func passwordHash(ofUser name: String) async throws -> String? {
        try record("GET user")
        return state.withLock { $0.users[name] }
    }

    public func usersWithoutPermissions() async throws -> [UserInfo] {
        try record("GET users without permissions")
        return state.withLock { state in
            let permitted = Set(state.permissions.values.flatMap { $0 })
            return state.users.keys.filter { !permitted.contains($0) }.map { UserInfo(name: $0) }
        }
    }

    public func deleteUsers(_ names: [String]) async throws {
        try record("POST users bulk-delete")
        state.withLock { state in
            for name in names where state.users.removeValue(forKey: name) != nil {
                for vhost in state.permissions.keys { state.permissions[vhost]?.remove(name) }
                state.userLimits[name] = nil
            }
        }
    }

    public func putUserLimit(user: String, name: String, value: Int) async throws {
        try record("PUT user limit")
        try state.withLock {
            guard $0.users[user] != nil else {
                throw ManagementError(code: .notFound, status: 404, summary: "management API answered 404 for PUT user limit")
            }
            $0.userLimits[user, default: [:]][name] = value
        }
    }

    public func userLimits() async throws -> [String: [String: Int]] {
        try record("GET user limits")
        return state.withLock { $0.userLimits }
    }

    public func vhostLimits() async throws -> [String: [String: Int]] {
        try record("GET vhost limits")
        return state.withLock { state in
            var out: [String: [String: Int]] = [:]
            for (key, value) in state.limits {
                guard let slash = key.lastIndex(of: "/") else { continue }
                out[String(key[..<slash]), default: [:]][String(key[key.index(after: slash)...])] = value
            }
            return out
        }
    }

    public func putOperatorPolicy(vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String) async throws {
        try record("PUT operator policy")
        try state.withLock {
            guard $0.vhosts[vhost] != nil, !definition.isEmpty else {
                throw ManagementError(code: .badRequest, status: 400, summary: "management API answered 400 for PUT operator policy")
            }
            $0.operatorPolicies["\(vhost)/\(name)"] = PolicyInfo(
                vhost: vhost, name: name, pattern: pattern, priority: priority, applyTo: applyTo, definition: definition)
        }
    }

    public func deleteOperatorPolicy(vhost: String, name: String) async throws -> Bool {
        try record("DELETE operator policy")
        return state.withLock { $0.operatorPolicies.removeValue(forKey: "\(vhost)/\(name)") != nil }
    }

    public func operatorPolicies() async throws -> [PolicyInfo] {
        try record("GET operator policies")
        return state.withLock { Array($0.operatorPolicies.values) }
    }

    public func nodes() async throws -> [NodeInfo] {
        try record("GET nodes")
        return [nodeInfo.withLock { $0 }]
    }

    public func queueTotals() async throws -> [String: QueueTotals] {
        try record("GET queues")
        return state.withLock { state in
            var totals: [String: QueueTotals] = [:]
            for queue in state.queues.values {
                totals[queue.vhost, default: QueueTotals()].queues += 1
                totals[queue.vhost, default: QueueTotals()].messages += queue.messages ?? 0
            }
            return totals
        }
    }

    public func connectionCounts() async throws -> [String: Int] {
        try record("GET connections")
        return [:]
    }

    /// Like the broker: nil when the vhost is absent; each queue's `messages` as ready.
    public func queueStatistics(vhost: String) async throws -> [QueueStatistics]? {
        try record("GET queues of a vhost")
        return state.withLock { state in
            guard state.vhosts[vhost] != nil else { return nil }
            return state.queues.values.filter { $0.vhost == vhost }
                .map { QueueStatistics(name: $0.name, messagesReady: $0.messages ?? 0) }
        }
    }

    public func putPermissions(vhost: String, user: String, configure: String, write: String, read: String) async throws {
        try record("PUT permissions")
        state.withLock {
            $0.permissions[vhost, default: []].insert(user)
            $0.grants["\(vhost)/\(user)"] = PermissionInfo(user: user, vhost: vhost, configure: configure, write: write, read: read)
        }
    }

    /// Like the broker: an absent vhost or user is refused, and (as RabbitMQ 4 does; 3.10 takes
    /// it) an exchange that does not exist yet.
    public func putTopicPermission(vhost: String, user: String, exchange: String, write: String, read: String) async throws {
        try record("PUT topic permissions")
        try state.withLock { state in
            guard state.vhosts[vhost] != nil, state.users[user] != nil else {
                throw ManagementError(code: .badRequest, status: 400, summary: "vhost_or_user_not_found")
            }
            guard state.exchanges["\(vhost)/\(exchange)"] != nil else {
                throw ManagementError(code: .badRequest, status: 400, summary: "no_such_exchange")
            }
            state.topicGrants["\(vhost)/\(user)/\(exchange)"] = write
        }
    }

    public func permissions() async throws -> [PermissionInfo] {
        try record("GET all permissions")
        return state.withLock { state in
            state.permissions.flatMap { vhost, users in users.compactMap { state.grants["\(vhost)/\($0)"] } }
        }
    }

    public func permissions(vhost: String) async throws -> [PermissionInfo] {
        try record("GET permissions")
        return state.withLock { state in
            (state.permissions[vhost] ?? []).compactMap { state.grants["\(vhost)/\($0)"] }
        }
    }

    public func putExchange(vhost: String, name: String, type: String, durable: Bool, autoDelete: Bool, arguments: [String: JSONValue]) async throws -> Bool {
        try record("PUT exchange")
        return try state.withLock {
            // As the broker: another type is refused as inequivalent.
            if let existing = $0.exchanges["\(vhost)/\(name)"], existing.type != type {
                throw ManagementError(code: .badRequest, status: 400, summary: "management API answered 400 for PUT exchange")
            }
            guard $0.exchanges["\(vhost)/\(name)"] == nil else { return false }
            $0.exchanges["\(vhost)/\(name)"] = ExchangeInfo(vhost: vhost, name: name, type: type, durable: durable, arguments: arguments)
            return true
        }
    }

    public func exchange(vhost: String, name: String) async throws -> ExchangeInfo? {
        try record("GET exchange")
        return state.withLock { $0.exchanges["\(vhost)/\(name)"] }
    }

    public func putQueue(vhost: String, name: String, durable: Bool, autoDelete: Bool, arguments: [String: JSONValue]) async throws -> Bool {
        try record("PUT queue")
        if name == "warren.claim", let winner = claimConflict.withLock({ $0 }) {
            state.withLock {
                $0.queues["\(vhost)/\(name)"] = QueueInfo(vhost: vhost, name: name, durable: true, arguments: Claim.arguments(for: winner))
            }
            if Claim.arguments(for: winner)["x-max-length"] != arguments["x-max-length"] {
                throw ManagementError(code: .badRequest, status: 400, summary: "management API answered 400 for PUT queue")
            }
        }
        // As the broker: a queue needs its vhost, and a redeclare with another value of an
        // argument the broker checks (given or held) is refused as inequivalent (what the claim
        // and the record locks rely on, and what queues of earlier environments do).
        return try state.withLock {
            guard $0.vhosts[vhost] != nil else {
                throw ManagementError(code: .notFound, status: 404, summary: "management API answered 404 for PUT queue")
            }
            if let existing = $0.queues["\(vhost)/\(name)"],
                FakeBroker.checkedArguments.contains(where: { existing.arguments[$0] != arguments[$0] }) {
                throw ManagementError(code: .badRequest, status: 400, summary: "management API answered 400 for PUT queue")
            }
            guard $0.queues["\(vhost)/\(name)"] == nil else { return false }
            $0.queues["\(vhost)/\(name)"] = QueueInfo(
                vhost: vhost, name: name, durable: durable, arguments: arguments, type: arguments["x-queue-type"]?.stringValue ?? "classic")
            return true
        }
    }

    public func deleteQueue(vhost: String, name: String) async throws -> Bool {
        try record("DELETE queue")
        return state.withLock { $0.queues.removeValue(forKey: "\(vhost)/\(name)") != nil }
    }

    public func purgeQueue(vhost: String, name: String) async throws -> Bool {
        try record("DELETE queue contents")
        return state.withLock { state in
            guard state.queues["\(vhost)/\(name)"] != nil else { return false }
            state.queues["\(vhost)/\(name)"]?.messages = 0
            state.recentMessages.remove("\(vhost)/\(name)")
            return true
        }
    }

    /// Like the broker: the fetch needs the service user's ("warren-admin") permissions in the vhost.
    public func holdsMessages(vhost: String, name: String) async throws -> Bool {
        try record("POST queue get")
        return try state.withLock {
            guard $0.permissions[vhost]?.contains("warren-admin") == true else {
                throw ManagementError(code: .unauthorized, status: 401, summary: "management API answered 401 for POST queue get")
            }
            return ($0.queues["\(vhost)/\(name)"]?.messages ?? 0) > 0 || $0.recentMessages.contains("\(vhost)/\(name)")
        }
    }


    public func queue(vhost: String, name: String) async throws -> QueueInfo? {
        try record("GET queue")
        return state.withLock { $0.queues["\(vhost)/\(name)"] }
    }

    public func bind(vhost: String, exchange: String, queue: String, routingKey: String, arguments: [String: JSONValue]) async throws {
        try record("POST binding")
        state.withLock {
            $0.bindings["\(vhost)/\(exchange)/\(queue)/\(routingKey)"] = BindingInfo(
                vhost: vhost, source: exchange, destination: queue, routingKey: routingKey, propertiesKey: routingKey)
        }
    }

    public func bindings(vhost: String, exchange: String, queue: String) async throws -> [BindingInfo] {
        try record("GET bindings")
        return state.withLock { $0.bindings.values.filter { $0.vhost == vhost && $0.source == exchange && $0.destination == queue } }
    }

    public func putVhostLimit(vhost: String, name: String, value: Int) async throws {
        try record("PUT vhost limit")
        state.withLock { $0.limits["\(vhost)/\(name)"] = value }
    }

    public func putVhostLimits(vhost: String, _ limits: [String: Int]) async throws {
        try record("PUT vhost limits")
        try state.withLock { state in
            guard state.vhosts[vhost] != nil else { throw ManagementError(code: .notFound, status: 404, summary: "management API answered 404 for PUT vhost limits") }
            state.limits = state.limits.filter { !$0.key.hasPrefix("\(vhost)/") }
            for (name, value) in limits { state.limits["\(vhost)/\(name)"] = value }
        }
    }

    public func putPolicy(vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String) async throws {
        try record("PUT policy")
        try state.withLock {
            guard $0.vhosts[vhost] != nil, !definition.isEmpty, definition.keys.allSatisfy(takesPolicyKey) else {
                throw ManagementError(code: .badRequest, status: 400, summary: "management API answered 400 for PUT policy")
            }
            $0.policies["\(vhost)/\(name)"] = definition
        }
    }

    public func deletePolicy(vhost: String, name: String) async throws -> Bool {
        try record("DELETE policy")
        return state.withLock { $0.policies.removeValue(forKey: "\(vhost)/\(name)") != nil }
    }

    public func globalParameter(_ name: String) async throws -> JSONValue? {
        try record("GET global parameter")
        return state.withLock { $0.globalParameters[name] }
    }

    public func putGlobalParameter(_ name: String, value: JSONValue) async throws {
        try record("PUT global parameter")
        state.withLock { $0.globalParameters[name] = value }
    }

    public func globalParameters(prefix: String) async throws -> [String: JSONValue] {
        try record("GET global parameters")
        return state.withLock { $0.globalParameters.filter { $0.key.hasPrefix(prefix) } }
    }

    /// The names a team's index lists (`TeamIndex`), as the broker holds it.
    public func indexed(team: String) -> [String] {
        state.withLock { state in
            guard case .object(let fields)? = state.globalParameters["warren.team.\(team)"],
                  case .array(let names)? = fields["environments"] else { return [] }
            return names.compactMap { if case .string(let name) = $0 { name } else { nil } }
        }
    }

    /// The queue arguments RabbitMQ compares when a queue is declared again (others, such as
    /// the claim's record, are not compared): the record locks' x-expires, and every queue
    /// setting's key as an argument (a policy's "message-ttl" is "x-message-ttl").
    public static let checkedArguments = ["x-expires"] + QueueSetting.all.flatMap { $0.broker.map(\.argumentName) }

    /// Like the broker, which refuses a policy key it does not know ("not recognised policy
    /// settings"): a setting whose release rule the fake's version does not meet.
    private func takesPolicyKey(_ key: String) -> Bool {
        let release = BrokerVersion(parsing: version.withLock { $0 })
        guard let setting = QueueSetting.all.first(where: { $0.broker.contains { $0.inPolicy && $0.key == key } }),
            case .since(let needed) = setting.release
        else { return true }
        return release >= needed
    }

    public func logging(to logger: Logger) -> any BrokerAdmin { self }

    /// True when the broker holds nothing at all of the given vhost and its users, and its
    /// team's index does not list it.
    public func holdsNothing(of vhost: String) -> Bool {
        let parts = vhost.split(separator: ".")
        let listed = parts.count == 3 && indexed(team: String(parts[1])).contains(String(parts[2]))
        return !listed && state.withLock { state in
            state.vhosts[vhost] == nil && !state.users.keys.contains { $0.hasPrefix(vhost + ".") }
                && !state.exchanges.values.contains { $0.vhost == vhost } && !state.queues.values.contains { $0.vhost == vhost }
        }
    }

    /// What `nodes()` answers: set an alarm on it to test what an alarm does.
    public let nodeInfo = PThreadMutex(NodeInfo(name: "rabbit@fake"))
}
