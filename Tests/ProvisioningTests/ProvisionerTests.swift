@testable import BrokerState
@testable import EnvironmentModel
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport

@Suite struct ProvisionerTests {
    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }
    let spec = EnvironmentSpec(name: "fraud-scoring")
    let vhost = "warren.team-a.fraud-scoring"

    @Test func createMakesEveryPartInOrder() async throws {
        let result = try await provisioner.create(team: "team-a", spec: spec)
        #expect(result.created)
        #expect(result.environment.vhost == vhost)
        #expect(EnvironmentNaming.isUser(result.credentials[0].username, of: vhost))
        #expect(result.credentials[0].password.count >= 32)

        let calls = broker.calls
        // Absent, so the vhost is made under the record's lock (the first lock also makes
        // Warren's own vhost), when a read under it still finds none, after the name went into
        // the team's index under the team's lock (where the quota holds; the first use builds the
        // index from the vhost listing); then the claim and a read of who holds it (no grant:
        // the broker gives the user that made a vhost its permissions there). The release
        // first (once per process), for what it would do unasked.
        #expect(Array(calls.prefix(21)) == [
            "overview", "GET vhost",
            "PUT queue", "GET vhost", "PUT vhost", "GET vhost", "GET vhost", "PUT permissions", "PUT queue",
            "GET vhost",
            "PUT queue", "GET global parameter", "GET vhosts", "PUT global parameter", "DELETE queue",
            "PUT vhost", "DELETE queue",
            "GET vhost", "GET vhost", "PUT queue", "GET queue",
        ])
        // Every ceiling at once (the overflow and stream segment policies, three operator
        // policies, the vhost's limits in one call): the vhost is new, and every queue is born
        // under them (see `makeParts`). Then the user (its permissions and limits), the exchange
        // and the queue at once.
        #expect(calls[21..<27].sorted() == [
            "PUT operator policy", "PUT operator policy", "PUT operator policy", "PUT policy", "PUT policy", "PUT vhost limits",
        ])
        #expect(calls[27..<33].sorted() == ["PUT exchange", "PUT permissions", "PUT queue", "PUT user", "PUT user limit", "PUT user limit"])
        // Then the binding, and the record marked ready under its lock: a read under the lock,
        // so a DELETE that began meanwhile keeps its mark.
        #expect(calls[33] == "POST binding")
        #expect(Array(calls.suffix(4)) == ["PUT queue", "GET vhost", "PUT vhost", "DELETE queue"])
        #expect(calls.count == 38)
        #expect(broker.indexed(team: "team-a") == ["fraud-scoring"])

        broker.state.withLock { state in
            #expect(state.vhosts[vhost] != nil)
            #expect(state.permissions[vhost] == ["warren-admin", result.credentials[0].username])
            #expect(state.exchanges["\(vhost)/fraud-scoring"]?.durable == true)
            #expect(state.exchanges["\(vhost)/fraud-scoring"]?.type == "direct")
            #expect(state.queues["\(vhost)/fraud-scoring"]?.durable == true)
            #expect(state.queues["\(vhost)/fraud-scoring"]?.arguments["x-queue-type"] == .string("quorum"))
            #expect(state.bindings["\(vhost)/fraud-scoring/fraud-scoring/fraud-scoring"] != nil)
            // Only a salted hash reaches the broker, never the password itself.
            let hash = state.users[result.credentials[0].username] ?? ""
            #expect(!hash.isEmpty && !hash.contains(result.credentials[0].password))
        }
    }

    /// RabbitMQ 4 gives quorum queues a delivery limit of 20 when none is set; Warren writes it
    /// in (record, policy, answer), so nobody learns of it from a dropped job. 3.x has none.
    @Test func aQuorumQueuesDefaultDeliveryLimitIsWrittenInOnRabbitMQ4() async throws {
        broker.version.withLock { $0 = "4.3.6" }
        let result = try await provisioner.create(team: "team-a", spec: spec)
        #expect(result.environment.spec.queues[0].deliveryLimit == 20)
        let record = broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) }
        #expect(record?.spec.queues[0].deliveryLimit == 20)
        #expect(broker.state.withLock { $0.policies.values.contains { $0["delivery-limit"] == .int(20) } })
        // The same body again is the same environment, not a conflict.
        #expect(try await provisioner.create(team: "team-a", spec: spec).created == false)
        var classic = EnvironmentSpec(name: "plain")
        classic.queue.type = .classic
        #expect(try await provisioner.create(team: "team-a", spec: classic).environment.spec.queues[0].deliveryLimit == nil)

        let older = FakeBroker()
        let onThree = Provisioner(admin: older, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
        #expect(try await onThree.create(team: "team-a", spec: spec).environment.spec.queues[0].deliveryLimit == nil)
    }

    /// Priorities on a quorum queue where the release has them (4.0 on), classic where it must.
    @Test func aQueueWithPrioritiesIsQuorumFromRabbitMQ4AndClassicBefore() async throws {
        var prioritised = EnvironmentSpec(name: "lanes")
        prioritised.queue.maxPriority = 9
        let onThree = try await provisioner.create(team: "team-a", spec: prioritised)
        #expect(onThree.environment.spec.queues[0].type == .classic)
        #expect(broker.state.withLock { $0.queues["warren.team-a.lanes/lanes"]?.arguments["x-max-priority"] } == .int(9))

        let newer = FakeBroker()
        newer.version.withLock { $0 = "4.0.5" }
        let onFour = Provisioner(admin: newer, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
        let made = try await onFour.create(team: "team-a", spec: prioritised)
        #expect(made.environment.spec.queues[0].type == .quorum)
        let arguments = newer.state.withLock { $0.queues["warren.team-a.lanes/lanes"]?.arguments }
        #expect(arguments?["x-queue-type"] == .string("quorum") && arguments?["x-max-priority"] == nil)
    }

    @Test func theRecordInTheVhostDescriptionRoundTrips() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        let description = broker.state.withLock { $0.vhosts[vhost]?.description }
        let record = try #require(EnvironmentRecord.decode(description: description))
        #expect(record.team == "team-a")
        #expect(record.spec == spec)
        #expect(record.state == .ready)
    }

    @Test func theClaimQueueCarriesTheSpecHashAndRecord() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        let claim = try #require(broker.state.withLock { $0.queues["\(vhost)/warren.claim"] })
        #expect(claim.arguments["x-queue-type"] == .string("classic"))
        guard case .int(let hash) = claim.arguments["x-max-length"] else { Issue.record("no hash"); return }
        var other = spec
        other.routingKey = "x"
        #expect(hash > 0 && hash < 1 << 48)
        #expect(hash == EnvironmentRecord.claimHash(of: spec) && hash != EnvironmentRecord.claimHash(of: other))
        #expect(Claim.record(in: claim)?.spec == spec)
    }

    @Test func aLostClaimIsAConflictThatLeavesTheWinnersEnvironment() async throws {
        // Another Warren won the race: its vhost exists, its claim holds another spec, but this
        // request read the vhost as absent and overwrote the description.
        var winnerSpec = spec
        winnerSpec.queue.type = .classic
        let winner = EnvironmentRecord(team: "team-a", spec: winnerSpec, createdAt: EnvironmentRecord.now(), state: .ready)
        broker.claimConflict.withLock { $0 = winner }
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        #expect(error?.code == .conflict)
        #expect(error?.fields == ["queue.type"])
        broker.state.withLock { state in
            #expect(state.vhosts[vhost] != nil, "the winner's vhost must survive")
            #expect(EnvironmentRecord.decode(description: state.vhosts[vhost]?.description)?.spec == winnerSpec)
            #expect(state.users.isEmpty)
        }
    }

    @Test func aRepeatedCreateWithTheSameSpecIssuesNewCredentials() async throws {
        let first = try await provisioner.create(team: "team-a", spec: spec)
        let second = try await provisioner.create(team: "team-a", spec: spec)
        #expect(!second.created)
        #expect(second.credentials[0].username != first.credentials[0].username)
        #expect(second.environment.createdAt == first.environment.createdAt)
        let users = broker.state.withLock { $0.users.keys.sorted() }
        #expect(users == [first.credentials[0].username, second.credentials[0].username].sorted())
    }

    @Test func aCreateWithAnotherSpecIsAConflictAndChangesNothing() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        let before = broker.state.withLock { ($0.users, $0.queues) }
        var other = spec
        other.queue.type = .classic
        other.routingKey = "other"
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: other)
        }
        #expect(error?.code == .conflict)
        #expect(error?.fields == ["queue.type", "routing_key"])
        let after = broker.state.withLock { ($0.users, $0.queues) }
        #expect(before.0 == after.0 && before.1 == after.1)
    }

    @Test func aVhostNotMadeByWarrenIsAConflict() async throws {
        try await broker.putVhost(vhost, description: "someone else's", tags: [], defaultQueueType: nil)
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        #expect(error?.code == .conflict)
    }

    /// The number of broker calls a create of a new environment makes, less the last (the
    /// release of the record's lock, whose failure costs nothing: the lock expires).
    static let createCalls = 37
    /// Which of them release a record lock: a failed release is tried once more, and the
    /// create goes on.
    static let unlockCalls: Set<Int> = [15, 17]

    @Test(arguments: 1...createCalls)
    func aFailureAtAnyStepOfACreateLeavesNothingBehind(k: Int) async throws {
        broker.fail(call: k)
        if Self.unlockCalls.contains(k) {
            #expect(try await provisioner.create(team: "team-a", spec: spec).created)
            #expect(broker.calls[(k - 1)...].prefix(3) == ["DELETE queue", "GET queue", "DELETE queue"])
            #expect(try await provisioner.inspect(team: "team-a", name: spec.name)?.isComplete == true)
            return
        }
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        #expect(error?.code == .broker)
        #expect(error?.step != nil)
        #expect(broker.holdsNothing(of: vhost), "call \(k) (\(broker.calls[k - 1])) failed and left something behind")
    }

    @Test func createCallsCountIsWhatTheFaultTableAssumes() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        #expect(broker.calls.count == Self.createCalls + 1)
        #expect(broker.calls.last == "DELETE queue")
    }

    @Test func aLockThatCannotBeReleasedCostsNothing() async throws {
        broker.fail(call: Self.createCalls + 1)
        let result = try await provisioner.create(team: "team-a", spec: spec)
        #expect(result.created)
        #expect(try await provisioner.inspect(team: "team-a", name: spec.name)?.isComplete == true)
    }

    /// A vhost that appears between a create's first read and its write (another create came
    /// first, or anyone) is found by the read under the record's lock, and never written over.
    @Test func aVhostMadeWhileTheCreateWaitedIsNotWrittenOver() async throws {
        // Call 10 is the read under the lock (the table in createMakesEveryPartInOrder).
        broker.onCall.withLock {
            $0 = (10, { [vhost] state in state.vhosts[vhost] = VhostInfo(name: vhost, description: "someone else's", tags: []) })
        }
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        #expect(error?.code == .conflict)
        #expect(broker.calls[9] == "GET vhost" && !broker.calls[10...].contains("PUT vhost"))
        broker.state.withLock { state in
            #expect(state.vhosts[vhost]?.description == "someone else's")
            #expect(state.users.isEmpty && state.queues.values.allSatisfy { $0.vhost != vhost })
        }
    }

    /// A release whose DELETE failed is sent again only while the lock holds the holder's own
    /// token: the first DELETE may have gone through, and another operation taken the lock.
    @Test func aFailedReleaseNeverDeletesAnotherHoldersLock() async throws {
        let lock = RecordLock(session: provisioner.session)
        try await lock.withLock(vhost) {}  // makes Warren's own vhost; from here: PUT, DELETE, GET
        let queue = "\(EnvironmentNaming.systemVhost)/lock.\(vhost)"
        let before = broker.calls.count
        broker.fail(call: 2)
        // Before the read that follows the failed DELETE: someone else holds the lock now.
        broker.onCall.withLock { $0 = (3, { state in state.queues[queue]?.arguments["x-max-length"] = .int(7) }) }
        try await lock.withLock(vhost) {}
        #expect(Array(broker.calls[before...]) == ["PUT queue", "DELETE queue", "GET queue"])
        #expect(broker.state.withLock { $0.queues[queue]?.arguments["x-max-length"] } == .int(7))

        // Still this holder's: sent again.
        broker.state.withLock { _ = $0.queues.removeValue(forKey: queue) }
        let again = broker.calls.count
        broker.fail(call: 2)
        try await lock.withLock(vhost) {}
        #expect(Array(broker.calls[again...]) == ["PUT queue", "DELETE queue", "GET queue", "DELETE queue"])
        #expect(broker.state.withLock { $0.queues[queue] } == nil)
    }

    @Test func aFailedRepeatKeepsTheExistingEnvironment() async throws {
        let first = try await provisioner.create(team: "team-a", spec: spec)
        broker.fail(call: 7)
        await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        broker.state.withLock { state in
            #expect(state.vhosts[vhost] != nil)
            #expect(Array(state.users.keys) == [first.credentials[0].username])
        }
    }

    @Test func inspectReportsWhatIsMissing() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        let healthy = try #require(try await provisioner.inspect(team: "team-a", name: "fraud-scoring"))
        #expect(healthy.isComplete)
        #expect(healthy.users.count == 1)

        broker.state.withLock { $0.queues = [:] }
        let drifted = try #require(try await provisioner.inspect(team: "team-a", name: "fraud-scoring"))
        #expect(!drifted.isComplete)
        #expect(drifted.resources.missing == ["queue"])
        #expect(try await provisioner.inspect(team: "team-b", name: "fraud-scoring") == nil)
    }

    @Test func listShowsOnlyTheTeamsEnvironmentsByName() async throws {
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "zeta"))
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "alpha"))
        _ = try await provisioner.create(team: "team-b", spec: EnvironmentSpec(name: "beta"))
        try await broker.putVhost("warren.team-a.manual", description: "not ours", tags: [], defaultQueueType: nil)
        let names = try await provisioner.list(team: "team-a").map(\.name)
        #expect(names == ["alpha", "zeta"])
    }

    @Test func deleteRemovesTheVhostAndItsUsersAndTheJanitorThoseWithoutPermissions() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        _ = try await provisioner.create(team: "team-a", spec: spec)
        // A user whose permissions never arrived (a crash between the two calls).
        try await broker.putUser("\(vhost).0000beef", passwordHash: "x", tags: [])
        try await broker.putUser("warren.team-a.fraud-scoring-2.00000001", passwordHash: "x", tags: [])
        #expect(try await provisioner.delete(team: "team-a", name: "fraud-scoring"))
        // The delete finds users through the vhost's permissions (never by listing every user
        // on the broker): the one without permissions is the janitor's, once the vhost is gone.
        #expect(broker.state.withLock { $0.users["\(vhost).0000beef"] } != nil)
        // Another environment's user whose name shares a prefix is untouched.
        #expect(broker.state.withLock { $0.users["warren.team-a.fraud-scoring-2.00000001"] } != nil)
        #expect(try await Janitor(provisioner: provisioner, uncheckedGrace: .seconds(60)).sweep().orphanUsers == 2)
        #expect(broker.holdsNothing(of: vhost))
        #expect(try await provisioner.delete(team: "team-a", name: "fraud-scoring") == false)
    }

    @Test func reconcileRestoresWhatDriftedWithoutTouchingUsers() async throws {
        let created = try await provisioner.create(team: "team-a", spec: spec)
        let hashBefore = broker.state.withLock { $0.users[created.credentials[0].username] }
        broker.state.withLock { state in
            state.queues["\(vhost)/fraud-scoring"] = nil
            state.bindings = [:]
        }
        let repaired = try #require(try await provisioner.reconcile(team: "team-a", name: "fraud-scoring"))
        #expect(repaired.health.isComplete)
        #expect(repaired.credentials == nil)
        #expect(broker.state.withLock { $0.users[created.credentials[0].username] } == hashBefore)

        // With every user gone, a repair makes a new one and says so.
        _ = try await broker.deleteUser(created.credentials[0].username)
        let reissued = try #require(try await provisioner.reconcile(team: "team-a", name: "fraud-scoring"))
        #expect(reissued.credentials != nil)
        #expect(reissued.health.users.map(\.name) == [reissued.credentials?.username])
        #expect(try await provisioner.reconcile(team: "team-a", name: "nope") == nil)
    }

    @Test func theJanitorRemovesAbandonedCreatesAndOrphanUsersButNotDrift() async throws {
        // A create killed after its user: record still `creating`, no exchange, queue, binding.
        let abandoned = EnvironmentRecord(team: "team-a", spec: EnvironmentSpec(name: "half"), createdAt: "2020-01-01T00:00:00Z")
        try await broker.putVhost("warren.team-a.half", description: abandoned.encoded(), tags: [], defaultQueueType: nil)
        try await broker.putUser("warren.team-a.half.\(abandoned.incarnation)0000abcd", passwordHash: "x", tags: [])
        // A create killed just before it marked the record ready: complete, still `creating`.
        let almost = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "almost"))
        var creating = try #require(broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts["warren.team-a.almost"]?.description) })
        creating.state = .creating
        try await broker.putVhost("warren.team-a.almost", description: creating.encoded(), tags: [], defaultQueueType: nil)
        // A user whose vhost is gone, and a ready environment that drifted.
        try await broker.putUser("warren.team-b.gone.12345678", passwordHash: "x", tags: [])
        _ = try await provisioner.create(team: "team-a", spec: spec)
        broker.state.withLock { $0.queues["\(vhost)/fraud-scoring"] = nil }

        // Age is this janitor's own: the first sweep only notes what is `creating` (however
        // old its `created_at` says it is); a later one past the grace acts.
        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .milliseconds(50))
        #expect(try await janitor.sweep() == Janitor.Report(orphanUsers: 1))
        try await Task.sleep(for: .milliseconds(100))
        // A create in flight right now (first seen by this sweep) is left alone.
        let young = EnvironmentRecord(team: "team-a", spec: EnvironmentSpec(name: "young"), createdAt: "2020-01-01T00:00:00Z")
        try await broker.putVhost("warren.team-a.young", description: young.encoded(), tags: [], defaultQueueType: nil)

        let report = try await janitor.sweep()
        // `young` went onto the broker by hand here, past the team's index: it goes in. The
        // delete of `half` finds its users through the vhost's permissions, and its user never
        // got any: the orphan phase, after the deletes, removes it.
        #expect(report == Janitor.Report(completed: 1, removed: 1, orphanUsers: 1, indexed: 1))
        #expect(broker.holdsNothing(of: "warren.team-a.half"))
        #expect(broker.state.withLock { $0.users["warren.team-b.gone.12345678"] } == nil)
        #expect(broker.state.withLock { $0.users[almost.credentials[0].username] } != nil)
        #expect(broker.state.withLock { $0.vhosts[vhost] } != nil, "drift is repaired on request, never swept")
        #expect(broker.state.withLock { $0.vhosts["warren.team-a.young"] } != nil)
        let almostRecord = broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts["warren.team-a.almost"]?.description) }
        #expect(almostRecord?.state == .ready)
        #expect(try await Janitor(provisioner: provisioner, uncheckedGrace: .seconds(60)).sweep().isEmpty)
    }

    /// The guard asks the queue itself, which needs Warren's permissions in the vhost: without
    /// them (a DELETE right after a create made the vhost) they are granted and the queue asked
    /// again; a queue holding a message still keeps the environment.
    @Test func theDeleteGuardGrantsItselfTheFetchAndStillRefuses() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        broker.state.withLock {
            $0.permissions[vhost]?.remove("warren-admin")
            $0.recentMessages.insert("\(vhost)/fraud-scoring")
        }
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.delete(team: "team-a", name: "fraud-scoring", force: false)
        }
        #expect(error?.code == .messagesPending)
        #expect(broker.state.withLock { $0.vhosts[vhost] } != nil)

        broker.state.withLock {
            $0.permissions[vhost]?.remove("warren-admin")
            $0.recentMessages = []
        }
        #expect(try await provisioner.delete(team: "team-a", name: "fraud-scoring", force: false))
        #expect(broker.holdsNothing(of: vhost))
    }

    /// Asking a queue for a message returns it, and in a quorum queue that counts as a delivery
    /// (on RabbitMQ 4 the 20th dead-letters or drops it): a DELETE refused for messages the
    /// statistics already show must not ask the queue, however often it is sent again.
    @Test func aDeleteRefusedOnTheStatisticsNeverFetchesAMessage() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        broker.state.withLock { $0.queues["\(vhost)/fraud-scoring"]?.messages = 3 }
        let before = broker.calls.count
        for _ in 0..<3 {
            let error = await #expect(throws: ProvisioningError.self) {
                try await provisioner.delete(team: "team-a", name: "fraud-scoring", force: false)
            }
            #expect(error?.code == .messagesPending)
        }
        #expect(!broker.calls[before...].contains("POST queue get"))
        #expect(broker.state.withLock { $0.vhosts[vhost] } != nil)
    }

    @Test func aDeleteInterruptedAfterItsMarkIsFinishedByTheJanitor() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        // Fail the first user deletion (read, then under one hold of the lock: read, mark, the
        // vhost's permissions, then the bulk delete of its users): the record already says `deleting`.
        let before = broker.calls.count
        broker.fail(call: 6)
        await #expect(throws: ProvisioningError.self) {
            try await provisioner.delete(team: "team-a", name: "fraud-scoring")
        }
        #expect(Array(broker.calls[before..<(before + 6)]) == ["GET vhost", "PUT queue", "GET vhost", "PUT vhost", "GET permissions", "POST users bulk-delete"])
        let record = broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) }
        #expect(record?.state == .deleting)
        #expect(try await provisioner.inspect(team: "team-a", name: "fraud-scoring")?.state == .deleting)
        // A create meanwhile is refused rather than racing the delete.
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        #expect(error?.code == .conflict)
        // Like a create, a delete is left to finish for the grace, as this janitor sees it.
        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .milliseconds(50))
        #expect(try await janitor.sweep().removed == 0)
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await janitor.sweep().removed == 1)
        #expect(broker.holdsNothing(of: vhost))
    }

    @Test func aCreateDoesNotMarkReadyOverADeleteThatBegan() async throws {
        // The first create is cut short after its binding (as by a crash): the record says
        // `creating`. A DELETE then marks it `deleting`; a repeated create must not say `ready`.
        broker.fail(call: 13)
        _ = try? await provisioner.create(team: "team-a", spec: spec)
        try await broker.putVhost(vhost, description: EnvironmentRecord(team: "team-a", spec: spec, createdAt: EnvironmentRecord.now()).encoded(), tags: [], defaultQueueType: nil)
        let deleting = { () -> String in
            var record = EnvironmentRecord(team: "team-a", spec: spec, createdAt: EnvironmentRecord.now())
            record.state = .deleting
            return record.encoded()
        }()
        // The delete's mark lands between the create's first read and its final one.
        broker.onCall.withLock { $0 = (8, { state in state.vhosts[vhost]?.description = deleting }) }
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        #expect(error?.code == .conflict)
        let record = broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) }
        #expect(record?.state == .deleting)
    }

    @Test func unreachableBrokersAreDescribedWithoutTheirAddress() async throws {
        broker.fail(call: 1, with: ManagementError(code: .unreachable, summary: "management API unreachable at http://10.1.2.3:15672"))
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        #expect(error?.detail.contains("10.1.2.3") == false)
        #expect(error?.underlying?.code == .unreachable)
    }

    @Test func readinessNeedsTheAdministratorTag() async throws {
        #expect(try await provisioner.readiness().rabbitmqVersion == "3.10.8")
    }
}
