@testable import BrokerState
@testable import EnvironmentModel
import Locking
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport
import WireFormat

/// The janitor on a large broker: its revocations do not wait on whole-broker listings, each
/// phase stands alone, and bulk work keeps a bounded number of calls in flight.
@Suite struct JanitorTests {
    let fake = FakeBroker()
    let broker: ScriptedBroker
    let spec = EnvironmentSpec(name: "fraud-scoring")
    let vhost = "warren.team-a.fraud-scoring"

    init() { broker = ScriptedBroker(fake) }

    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }

    /// Schedules the revocation of `user` (of the environment at `vhost`) for a moment past.
    func scheduleOverdueRevocation(of user: String) {
        fake.state.withLock { state in
            guard var record = EnvironmentRecord.decode(description: state.vhosts[vhost]?.description) else { return }
            record.revocations[user] = "2020-01-01T00:00:00Z"
            state.vhosts[vhost]?.description = record.encoded()
        }
    }

    @Test func revocationsHappenWhenTheListingsThatGrowWithTheBrokerFail() async throws {
        let created = try await provisioner.create(team: "team-a", spec: spec)
        let old = created.credentials[0].username
        _ = try #require(try await provisioner.issueCredentials(team: "team-a", name: "fraud-scoring", role: .full, revokeOthersAfter: nil))
        scheduleOverdueRevocation(of: old)
        // What timed out on a broker with 85,000 users.
        broker.failing.withLock { $0 = ["usersWithoutPermissions", "permissions()"] }

        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .seconds(60))
        let report = try await janitor.sweep()
        #expect(report.revoked == 1)
        #expect(report.failedPhases == ["orphan users", "regrant full users"])
        #expect(fake.state.withLock { $0.users[old] } == nil, "the due revocation happened")
        let record = fake.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) }
        #expect(record?.revocations.isEmpty == true)
        #expect(!fake.calls.contains("GET users"), "no sweep lists every user")
    }

    @Test func theVhostListingFailingLeavesTheOrphanPhaseRunning() async throws {
        try await fake.putUser("warren.team-b.gone.12345678", passwordHash: "x", tags: [])
        broker.failing.withLock { $0 = ["vhosts"] }
        let report = try await Janitor(provisioner: provisioner, uncheckedGrace: .seconds(60)).sweep()
        #expect(report.orphanUsers == 1)
        #expect(report.failedPhases == ["list vhosts"])
        #expect(fake.state.withLock { $0.users["warren.team-b.gone.12345678"] } == nil)
    }

    /// A slow orphan listing (RabbitMQ 3.10 builds it per user) is not asked for again at
    /// once: the phase waits nine times as long as it took, doubled per failure in a row.
    @Test func aSlowOrphanListingIsPaced() async throws {
        broker.listingDelay.withLock { $0 = .milliseconds(1100) }
        broker.failing.withLock { $0 = ["usersWithoutPermissions"] }
        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .seconds(60))
        #expect(try await janitor.sweep().failedPhases == ["orphan users"])
        #expect(try await janitor.sweep().failedPhases.isEmpty, "not asked again within 19.8 s")
        #expect(broker.withoutPermissionsListings.withLock { $0 } == 1)
        var pacing = Janitor.ListingPacing()
        pacing.ran(took: .seconds(1), failed: true)
        #expect(!pacing.due(at: .now + .seconds(17)) && pacing.due(at: .now + .seconds(19)))
        pacing.ran(took: .seconds(1), failed: false)
        #expect(!pacing.due(at: .now + .seconds(8)) && pacing.due(at: .now + .seconds(10)))
        pacing.ran(took: .milliseconds(300), failed: false)
        #expect(pacing.due(at: .now), "a quick listing runs every sweep")
    }

    /// The regrant's whole-broker listing fails alone and is tried again; while it is quick it
    /// runs every sweep, so a full user an earlier Warren makes later (a rolling upgrade) is
    /// regranted too. A slow one is paced like the orphans' (`ListingPacing`).
    @Test func fullUsersAreRegrantedEverySweepWhileTheListingIsQuick() async throws {
        let created = try await provisioner.create(team: "team-a", spec: spec)
        let user = created.credentials[0].username
        // As an earlier Warren granted it.
        try await fake.putPermissions(vhost: vhost, user: user, configure: ".*", write: ".*", read: ".*")
        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .seconds(60))
        broker.failing.withLock { $0 = ["permissions()"] }
        #expect(try await janitor.sweep().failedPhases == ["regrant full users"])
        broker.failing.withLock { $0 = [] }
        #expect(try await janitor.sweep().regranted == 1)
        #expect(fake.state.withLock { $0.grants["\(vhost)/\(user)"]?.configure } != ".*")
        let later = try await provisioner.issueCredentials(team: "team-a", name: spec.name, role: .full, revokeOthersAfter: nil)
        let laterUser = try #require(later?.credentials.username)
        try await fake.putPermissions(vhost: vhost, user: laterUser, configure: ".*", write: ".*", read: ".*")
        #expect(try await janitor.sweep().regranted == 1)
        #expect(fake.state.withLock { $0.grants["\(vhost)/\(laterUser)"]?.configure } != ".*")
    }

    /// The users are listed before their vhosts are read, so a create's brand-new user (made,
    /// its permissions not yet granted) is never taken for an orphan; an earlier incarnation's
    /// user of a settled environment is.
    @Test func orphansAreFoundWithoutPermissionsAndJudgedByTheirVhostReadAfterwards() async throws {
        let created = try await provisioner.create(team: "team-a", spec: spec)
        let record = try #require(fake.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) })
        let earlier = "\(vhost).0badc0de12345678"
        let current = EnvironmentNaming.newUserName(vhost: vhost, incarnation: record.incarnation)
        try await fake.putUser(earlier, passwordHash: "x", tags: [])
        try await fake.putUser(current, passwordHash: "x", tags: [])
        let creating = EnvironmentRecord(team: "team-a", spec: EnvironmentSpec(name: "young"), createdAt: EnvironmentRecord.now())
        try await fake.putVhost("warren.team-a.young", description: creating.encoded(), tags: [], defaultQueueType: nil)
        let young = EnvironmentNaming.newUserName(vhost: "warren.team-a.young", incarnation: "0badc0de")
        try await fake.putUser(young, passwordHash: "x", tags: [])

        let report = try await Janitor(provisioner: provisioner, uncheckedGrace: .seconds(60)).sweep()
        #expect(report.orphanUsers == 1)
        fake.state.withLock { state in
            #expect(state.users[earlier] == nil)
            #expect(state.users[current] != nil, "a user of the incarnation in force stays")
            #expect(state.users[young] != nil, "a user of a create in progress stays")
            #expect(state.users[created.credentials[0].username] != nil)
        }
        let calls = fake.calls
        let listed = try #require(calls.lastIndex(of: "GET users without permissions"))
        #expect(calls[listed + 1] == "GET vhost", "the candidates' vhosts are read after the listing")
    }

    /// The grace must outlast the longest create (its deadline plus one call's bound), and the
    /// record lock's lease is derived from the same bound: rules of the domain, not of the
    /// executable's configuration.
    @Test func theGraceMustOutlastTheLongestCreate() {
        let provisioner = Provisioner(
            admin: fake, serviceUser: "warren-admin", logger: Logger(label: "test"), createDeadline: .seconds(3), longestCall: .seconds(2))
        #expect(provisioner.longestCreate == .seconds(5))
        #expect(provisioner.recordLockLease == .seconds(6))
        #expect(Janitor.problem(withGrace: .seconds(6), for: provisioner) == nil)
        let problem = Janitor.problem(withGrace: .seconds(5), for: provisioner)
        #expect(problem?.contains("5000 ms") == true, "\(problem ?? "nil")")
        // The janitor itself refuses such a grace, whoever configures it.
        #expect(throws: Janitor.GraceTooShort.self) { try Janitor(provisioner: provisioner, grace: .seconds(5)) }
        #expect(throws: Never.self) { try Janitor(provisioner: provisioner, grace: .seconds(6)) }
        // A lease never shorter than 5 s, however quick the calls.
        #expect(Provisioner(admin: fake, serviceUser: "w", logger: Logger(label: "test"), longestCall: .milliseconds(500)).recordLockLease == .seconds(5))
    }

    /// A rotation that died between making its user and granting it leaves a user of the
    /// incarnation in force without permissions: it stays while a rotation could still be
    /// granting it (the grace), and goes once this janitor has seen it so for longer. Found in
    /// CI: such a user outlived its environment's DELETE, which finds users by their permissions.
    @Test func aHalfMadeRotationUserGoesOnceItHasStayedSoForTheGrace() async throws {
        let created = try await provisioner.create(team: "team-a", spec: spec)
        let record = try #require(fake.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) })
        let halfMade = EnvironmentNaming.newUserName(vhost: vhost, incarnation: record.incarnation)
        try await fake.putUser(halfMade, passwordHash: "x", tags: [])

        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .milliseconds(300))
        #expect(try await janitor.sweep().orphanUsers == 0, "first seen now: a rotation may be granting it")
        #expect(fake.state.withLock { $0.users[halfMade] } != nil)
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await janitor.sweep().orphanUsers == 1)
        fake.state.withLock { state in
            #expect(state.users[halfMade] == nil)
            #expect(state.users[created.credentials[0].username] != nil, "the granted user stays")
        }
    }

    @Test func aDeleteOf1000UsersIsBatchedWithABoundedNumberInFlight() async throws {
        let created = try await provisioner.create(team: "team-a", spec: spec)
        let record = try #require(fake.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) })
        fake.state.withLock { state in
            for _ in 1..<1000 {
                let user = EnvironmentNaming.newUserName(vhost: vhost, incarnation: record.incarnation)
                state.users[user] = "x"
                state.permissions[vhost, default: []].insert(user)
                state.grants["\(vhost)/\(user)"] = PermissionInfo(user: user, vhost: vhost, configure: ".*", write: ".*", read: ".*")
            }
        }
        let users = fake.state.withLock { state in state.users.keys.filter { EnvironmentNaming.isUser($0, of: vhost) }.count }
        #expect(users == 1000)
        broker.bulkDeleteDelay.withLock { $0 = .milliseconds(20) }
        let before = fake.calls.count

        #expect(try await provisioner.delete(team: "team-a", name: "fraud-scoring", force: true))
        let calls = fake.calls[before...]
        let batch = Provisioner.userBatch
        #expect(calls.filter { $0 == "POST users bulk-delete" }.count <= (users + batch - 1) / batch)
        #expect(!calls.contains("DELETE user"))
        #expect(!calls.contains("GET users"), "a delete never lists every user on the broker")
        let most = broker.mostBulkDeletesInFlight.withLock { $0 }
        #expect(most >= 1 && most <= Provisioner.userBatchesInFlight)
        #expect(fake.holdsNothing(of: vhost))
        #expect(fake.state.withLock { $0.users[created.credentials[0].username] } == nil)
    }

    /// RabbitMQ 3.10 answers a bulk delete naming a user already gone with 400, having deleted
    /// only the names before it; the batch is then finished one user at a time.
    @Test func aBulkDeleteRefusedForAnAbsentNameIsFinishedOneByOne() async throws {
        for user in ["u1", "u2", "u3"] { try await fake.putUser(user, passwordHash: "x", tags: []) }
        broker.refuseAbsentInBulk.withLock { $0 = true }
        try await provisioner.deleteUsers(["u1", "absent", "u2", "u3"])
        #expect(fake.state.withLock { $0.users.isEmpty })
        #expect(fake.calls.filter { $0 == "DELETE user" }.count == 4)
    }

    @Test func boundedConcurrencyRunsEveryOperationWithinItsBoundAndThrowsTheFirstError() async throws {
        let running = PThreadMutex((now: 0, most: 0, done: 0))
        struct Failure: Error {}
        let operations: [@Sendable () async throws -> Void] = (0..<40).map { i in
            {
                running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                try? await Task.sleep(for: .milliseconds(2))
                running.withLock { $0.now -= 1; $0.done += 1 }
                if i == 5 { throw Failure() }
            }
        }
        await #expect(throws: Failure.self) { try await concurrently(limit: 3, operations) }
        let seen = running.withLock { $0 }
        #expect(seen.done == 40, "an operation that fails stops no other")
        #expect(seen.most <= 3 && seen.most >= 1)
        #expect([1, 2, 3, 4, 5].batches(of: 2) == [[1, 2], [3, 4], [5]])
        #expect([Int]().batches(of: 2).isEmpty)
    }
}

/// The fake broker behind a script: named operations that fail (as listings time out on a large
/// broker), bulk deletes that take a while and are counted in flight, and RabbitMQ 3.10's way
/// with a bulk delete naming an absent user. Everything else goes to the fake as it is.
final class ScriptedBroker: BrokerAdmin, Sendable {
    let base: FakeBroker
    /// Operations ("usersWithoutPermissions", "permissions()", "vhosts") that answer as a timeout.
    let failing = PThreadMutex<Set<String>>([])
    let bulkDeleteDelay = PThreadMutex<Duration>(.zero)
    /// How long `usersWithoutPermissions` takes, and how often it was asked for.
    let listingDelay = PThreadMutex<Duration>(.zero)
    let withoutPermissionsListings = PThreadMutex(0)
    let bulkDeletesInFlight = PThreadMutex(0)
    let mostBulkDeletesInFlight = PThreadMutex(0)
    /// As RabbitMQ 3.10: a bulk delete stops at the first absent name with a 400.
    let refuseAbsentInBulk = PThreadMutex(false)

    init(_ base: FakeBroker) { self.base = base }

    private func check(_ operation: String) throws {
        if failing.withLock({ $0.contains(operation) }) {
            throw ManagementError(code: .timeout, summary: "\(operation) timed out after 10000 ms")
        }
    }

    func usersWithoutPermissions() async throws -> [UserInfo] {
        withoutPermissionsListings.withLock { $0 += 1 }
        let delay = listingDelay.withLock { $0 }
        if delay > .zero { try await Task.sleep(for: delay) }
        try check("usersWithoutPermissions")
        return try await base.usersWithoutPermissions()
    }

    func permissions() async throws -> [PermissionInfo] {
        try check("permissions()")
        return try await base.permissions()
    }

    func vhosts() async throws -> [VhostInfo] {
        try check("vhosts")
        return try await base.vhosts()
    }

    func deleteUsers(_ names: [String]) async throws {
        let now = bulkDeletesInFlight.withLock { $0 += 1; return $0 }
        mostBulkDeletesInFlight.withLock { $0 = max($0, now) }
        defer { bulkDeletesInFlight.withLock { $0 -= 1 } }
        let delay = bulkDeleteDelay.withLock { $0 }
        if delay > .zero { try await Task.sleep(for: delay) }
        if refuseAbsentInBulk.withLock({ $0 }) {
            try await base.deleteUsers([])  // the call, recorded as the broker saw it
            try base.state.withLock { state in
                for name in names {
                    guard state.users.removeValue(forKey: name) != nil else {
                        throw ManagementError(code: .badRequest, status: 400, summary: "management API answered 400 for POST users bulk-delete")
                    }
                    for vhost in state.permissions.keys { state.permissions[vhost]?.remove(name) }
                }
            }
            return
        }
        try await base.deleteUsers(names)
    }

    // Everything else as the fake does it.
    func overview() async throws -> Overview { try await base.overview() }
    func streamPort() async throws -> Int? { try await base.streamPort() }
    func whoami() async throws -> WhoAmI { try await base.whoami() }
    func vhost(_ name: String) async throws -> VhostInfo? { try await base.vhost(name) }
    func putVhost(_ name: String, description: String, tags: [String], defaultQueueType: String?) async throws -> Bool {
        try await base.putVhost(name, description: description, tags: tags, defaultQueueType: defaultQueueType)
    }
    func deleteVhost(_ name: String) async throws -> Bool { try await base.deleteVhost(name) }
    func protectVhost(_ name: String) async throws { try await base.protectVhost(name) }
    func unprotectVhost(_ name: String) async throws -> Bool { try await base.unprotectVhost(name) }
    func users() async throws -> [UserInfo] { try await base.users() }
    func putUser(_ name: String, passwordHash: String, tags: [String]) async throws { try await base.putUser(name, passwordHash: passwordHash, tags: tags) }
    func deleteUser(_ name: String) async throws -> Bool { try await base.deleteUser(name) }
    func passwordHash(ofUser name: String) async throws -> String? { try await base.passwordHash(ofUser: name) }
    func putPermissions(vhost: String, user: String, configure: String, write: String, read: String) async throws {
        try await base.putPermissions(vhost: vhost, user: user, configure: configure, write: write, read: read)
    }
    func permissions(vhost: String) async throws -> [PermissionInfo] { try await base.permissions(vhost: vhost) }
    func putTopicPermission(vhost: String, user: String, exchange: String, write: String, read: String) async throws {
        try await base.putTopicPermission(vhost: vhost, user: user, exchange: exchange, write: write, read: read)
    }
    func putExchange(vhost: String, name: String, type: String, durable: Bool, autoDelete: Bool, arguments: [String: JSONValue]) async throws -> Bool {
        try await base.putExchange(vhost: vhost, name: name, type: type, durable: durable, autoDelete: autoDelete, arguments: arguments)
    }
    func exchange(vhost: String, name: String) async throws -> ExchangeInfo? { try await base.exchange(vhost: vhost, name: name) }
    func putQueue(vhost: String, name: String, durable: Bool, autoDelete: Bool, arguments: [String: JSONValue]) async throws -> Bool {
        try await base.putQueue(vhost: vhost, name: name, durable: durable, autoDelete: autoDelete, arguments: arguments)
    }
    func queue(vhost: String, name: String) async throws -> QueueInfo? { try await base.queue(vhost: vhost, name: name) }
    func deleteQueue(vhost: String, name: String) async throws -> Bool { try await base.deleteQueue(vhost: vhost, name: name) }
    func purgeQueue(vhost: String, name: String) async throws -> Bool { try await base.purgeQueue(vhost: vhost, name: name) }
    func holdsMessages(vhost: String, name: String) async throws -> Bool { try await base.holdsMessages(vhost: vhost, name: name) }
    func bind(vhost: String, exchange: String, queue: String, routingKey: String, arguments: [String: JSONValue]) async throws {
        try await base.bind(vhost: vhost, exchange: exchange, queue: queue, routingKey: routingKey, arguments: arguments)
    }
    func bindings(vhost: String, exchange: String, queue: String) async throws -> [BindingInfo] {
        try await base.bindings(vhost: vhost, exchange: exchange, queue: queue)
    }
    func putVhostLimit(vhost: String, name: String, value: Int) async throws { try await base.putVhostLimit(vhost: vhost, name: name, value: value) }
    func putVhostLimits(vhost: String, _ limits: [String: Int]) async throws { try await base.putVhostLimits(vhost: vhost, limits) }
    func putPolicy(vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String) async throws {
        try await base.putPolicy(vhost: vhost, name: name, pattern: pattern, definition: definition, priority: priority, applyTo: applyTo)
    }
    func deletePolicy(vhost: String, name: String) async throws -> Bool { try await base.deletePolicy(vhost: vhost, name: name) }
    func putUserLimit(user: String, name: String, value: Int) async throws { try await base.putUserLimit(user: user, name: name, value: value) }
    func userLimits() async throws -> [String: [String: Int]] { try await base.userLimits() }
    func vhostLimits() async throws -> [String: [String: Int]] { try await base.vhostLimits() }
    func putOperatorPolicy(vhost: String, name: String, pattern: String, definition: [String: JSONValue], priority: Int, applyTo: String) async throws {
        try await base.putOperatorPolicy(vhost: vhost, name: name, pattern: pattern, definition: definition, priority: priority, applyTo: applyTo)
    }
    func deleteOperatorPolicy(vhost: String, name: String) async throws -> Bool { try await base.deleteOperatorPolicy(vhost: vhost, name: name) }
    func operatorPolicies() async throws -> [PolicyInfo] { try await base.operatorPolicies() }
    func nodes() async throws -> [NodeInfo] { try await base.nodes() }
    func queueTotals() async throws -> [String: QueueTotals] { try await base.queueTotals() }
    func connectionCounts() async throws -> [String: Int] { try await base.connectionCounts() }
    func queueStatistics(vhost: String) async throws -> [QueueStatistics]? { try await base.queueStatistics(vhost: vhost) }
    func globalParameter(_ name: String) async throws -> JSONValue? { try await base.globalParameter(name) }
    func putGlobalParameter(_ name: String, value: JSONValue) async throws { try await base.putGlobalParameter(name, value: value) }
    func globalParameters(prefix: String) async throws -> [String: JSONValue] { try await base.globalParameters(prefix: prefix) }
    func logging(to logger: Logger) -> any BrokerAdmin { self }
}
