@testable import BrokerState
@testable import EnvironmentModel
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport
import WireFormat

/// The operator's ceilings: what a create puts on the broker, what a request may ask, the
/// users and rotations they cap, and how environments made before them are brought in line.
@Suite struct CeilingsTests {
    let broker = FakeBroker()
    let ceilings = Ceilings(
        connections: 10, queues: 8, environmentBytes: 8 << 20, queueLength: 1000, userConnections: 5, userChannels: 20, users: 4,
        rotationsPerMinute: 3)
    let provisioner: Provisioner
    let vhost = "warren.team-a.jobs"

    init() {
        provisioner = Provisioner(
            admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2), ceilings: ceilings)
    }

    @Test func aCreatePutsEveryCeilingOnTheBroker() async throws {
        var spec = EnvironmentSpec(name: "jobs")
        spec.limits.maxConnections = 6
        let result = try await provisioner.create(team: "team-a", spec: spec)
        let user = result.credentials[0].username
        broker.state.withLock { state in
            #expect(state.limits["\(vhost)/max-connections"] == 6)
            #expect(state.limits["\(vhost)/max-queues"] == 8)
            #expect(state.operatorPolicies["\(vhost)/warren.ceiling"]?.definition == ["max-length": 1000, "max-length-bytes": .int((8 << 20) / 8)])
            #expect(state.operatorPolicies["\(vhost)/warren.ceiling"]?.pattern == ".*")
            #expect(state.operatorPolicies["\(vhost)/warren.own"]?.definition == ["max-length": 0, "max-length-bytes": 0])
            #expect(state.policies["\(vhost)/warren.overflow"] == ["overflow": "reject-publish"])
            // A user's connections never exceed its environment's.
            #expect(state.userLimits[user] == ["max-connections": 5, "max-channels": 20])
        }
    }

    @Test func limitsInForceNeverExceedACeiling() {
        let asked = EnvironmentSpec.Limits(maxQueues: 4, maxConnections: 100_000, maxBytes: 1 << 20)
        let inForce = ceilings.inForce(asked)
        #expect(inForce.maxQueues == 4)
        #expect(inForce.maxConnections == 10)
        #expect(inForce.maxBytes == 1 << 20)
        #expect(inForce.maxQueueBytes == (1 << 20) / 4)
        // Nothing asked: the ceilings.
        #expect(ceilings.inForce(.init()).maxConnections == 10)
        #expect(ceilings.inForce(.init()).maxQueueBytes == (8 << 20) / 8)
    }

    @Test func askingAboveACeilingIsAProblemNamingIt() {
        var spec = EnvironmentSpec(name: "jobs")
        spec.limits = .init(maxQueues: 9, maxConnections: 11, maxBytes: (8 << 20) + 1)
        spec.queues[0].maxLength = 1001
        let problems = ceilings.problems(in: spec)
        #expect(problems.map(\.field) == ["limits.max_queues", "limits.max_connections", "limits.max_bytes", "queues[0].max_length"])
        #expect(problems.allSatisfy { $0.reason.contains("ceiling") })
        #expect(problems[1].reason.contains("10"))
        // A PATCH that gives no limits does not answer for the ones the environment has.
        #expect(ceilings.problems(in: spec, limitsAsked: false).map(\.field) == ["queues[0].max_length"])
        // At the ceiling is allowed.
        spec.limits = .init(maxQueues: 8, maxConnections: 10, maxBytes: 8 << 20)
        spec.queues[0].maxLength = 1000
        #expect(ceilings.problems(in: spec).isEmpty)
    }

    @Test func aTopologyThatNeedsMoreQueuesThanTheCeilingIsRefused() {
        let queues = (0..<4).map { EnvironmentSpec.Queue(name: "q\($0)", deadLetter: true) }
        let spec = EnvironmentSpec(
            name: "jobs", exchange: .init(name: "jobs", type: .direct), queues: queues,
            bindings: queues.map { .init(queue: $0.name, routingKey: $0.name) })
        // Four queues, four dead-letter queues and the claim: nine, over eight.
        #expect(ceilings.problems(in: spec).map(\.field) == ["queues"])
    }

    @Test func usersStopAtTheCeiling() async throws {
        let result = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "jobs"))
        #expect(result.credentials.count == 1)
        // Three more reach the ceiling of four; the fifth is refused and made nothing.
        for _ in 0..<3 { _ = try await provisioner.issueCredentials(team: "team-a", name: "jobs", role: .full, revokeOthersAfter: nil) }
        let before = broker.state.withLock { $0.users.count }
        // A Provisioner of its own: this one's budget of three rotations per minute is spent.
        let refused = await #expect(throws: ProvisioningError.self) {
            try await Provisioner(
                admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), ceilings: ceilings
            ).issueCredentials(team: "team-a", name: "jobs", role: .full, revokeOthersAfter: nil)
        }
        #expect(refused?.code == .quotaExceeded)
        #expect(refused?.detail.contains("ceiling is 4") == true)
        #expect(broker.state.withLock { $0.users.count } == before)
        // Revoking the others at once makes room.
        let rotated = try await Provisioner(
            admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), ceilings: ceilings
        ).issueCredentials(team: "team-a", name: "jobs", role: .full, revokeOthersAfter: .zero)
        #expect(rotated != nil)
        #expect(broker.state.withLock { state in state.users.keys.filter { EnvironmentNaming.isUser($0, of: vhost) }.count } == 1)
    }

    @Test func aTeamsBudgetPerMinuteIsCapped() throws {
        let budget = TeamBudget(perMinute: 3)
        let start = ContinuousClock.now
        for _ in 0..<3 { #expect(budget.take(team: "a", now: start) == nil) }
        let wait = try #require(budget.take(team: "a", now: start))
        #expect(wait > .zero && wait <= .seconds(20))
        // Another team has its own budget; the first gets one back after a third of a minute.
        #expect(budget.take(team: "b", now: start) == nil)
        #expect(budget.take(team: "a", now: start + .seconds(21)) == nil)
        #expect(budget.take(team: "a", now: start + .seconds(21)) != nil)
    }

    @Test func anEnvironmentMadeBeforeCeilingsIsBroughtInLineOnce() async throws {
        let result = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "jobs"))
        let user = result.credentials[0].username
        // As an earlier Warren left it: no ceilings, no user limits.
        broker.state.withLock { state in
            state.operatorPolicies = [:]
            state.limits = [:]
            state.userLimits = [:]
            state.policies["\(vhost)/warren.overflow"] = nil
        }
        let records = try await sweepRecords()
        #expect(try await provisioner.reconcileCeilings(records) == 1)
        broker.state.withLock { state in
            #expect(state.limits["\(vhost)/max-connections"] == 10)
            #expect(state.operatorPolicies["\(vhost)/warren.ceiling"] != nil)
            #expect(state.policies["\(vhost)/warren.overflow"] != nil)
            #expect(state.userLimits[user] == ["max-connections": 5, "max-channels": 20])
        }
        #expect(broker.calls.contains("DELETE queue contents"))
        // In line now: the next sweep only lists.
        let calls = broker.calls.count
        #expect(try await provisioner.reconcileCeilings(records) == 0)
        #expect(broker.calls[calls...].sorted() == ["GET operator policies", "GET user limits", "GET vhost limits"])
    }

    @Test func aChangedCeilingReachesEnvironmentsThatExist() async throws {
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "jobs"))
        var lower = ceilings
        lower.connections = 3
        let later = Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), ceilings: lower)
        #expect(try await later.reconcileCeilings(try await sweepRecords()) == 1)
        #expect(broker.state.withLock { $0.limits["\(vhost)/max-connections"] } == 3)
    }

    @Test func aTiersEnvironmentHasItsTiersCeilingsOthersTheGlobalOnes() async throws {
        var gold = ceilings
        gold.connections = 50
        let tiered = Provisioner(
            admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), ceilings: ceilings, tiers: ["gold": gold])
        #expect(tiered.tier(ofBlueprint: "gold") == "gold" && tiered.tier(ofBlueprint: "plain") == nil)
        let result = try await tiered.create(team: "team-a", spec: EnvironmentSpec(name: "jobs"), tier: "gold")
        #expect(result.environment.tier == "gold")
        #expect(tiered.ceilings(for: result.environment).connections == 50)
        #expect(broker.state.withLock { $0.limits["\(vhost)/max-connections"] } == 50)
        // The tier is in the record: a sweep keeps it, and the global ceilings do not undo it.
        #expect(try await tiered.reconcileCeilings(try await sweepRecords()) == 0)
        // A tier the operator removed: the environment falls back to the global ceilings.
        #expect(try await provisioner.reconcileCeilings(try await sweepRecords()) == 1)
        #expect(broker.state.withLock { $0.limits["\(vhost)/max-connections"] } == 10)
    }

    private func sweepRecords() async throws -> [String: EnvironmentRecord] {
        var records: [String: EnvironmentRecord] = [:]
        for info in try await broker.vhosts() {
            if case .valid(let record) = EnvironmentRecordStore.reading(info) { records[info.name] = record }
        }
        return records
    }
}
