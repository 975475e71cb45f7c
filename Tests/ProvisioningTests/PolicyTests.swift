@testable import BrokerState
@testable import EnvironmentModel
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport
import WireFormat

/// Queue settings in per-queue policies: made by a create, changed in place by a PATCH,
/// left to the arguments of queues declared by an earlier Warren.
@Suite struct PolicyTests {
    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }
    let vhost = "warren.team-a.scoring"
    let jobs = EnvironmentSpec.Queue(name: "jobs.v1", deliveryLimit: 5, deadLetter: true, messageTTLMilliseconds: 60_000, maxLength: 1000, overflow: .rejectPublish)
    var spec: EnvironmentSpec {
        EnvironmentSpec(name: "scoring", exchange: .init(name: "scoring", type: .direct), queues: [jobs], bindings: [.init(queue: "jobs.v1", routingKey: "jobs")])
    }

    func policy(_ queue: String) -> [String: JSONValue]? {
        broker.state.withLock { $0.policies["\(vhost)/warren.queue.\(queue)"] }
    }

    @Test func aCreatePutsTheSettingsInAPolicyAndKeepsOnlyFixedOnesAsArguments() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        #expect(policy("jobs.v1") == [
            "delivery-limit": 5, "dead-letter-exchange": "scoring.dlx", "dead-letter-routing-key": "jobs.v1",
            "message-ttl": 60_000, "max-length": 1000, "overflow": "reject-publish",
        ])
        #expect(broker.state.withLock { $0.queues["\(vhost)/jobs.v1"]?.arguments } == ["x-queue-type": "quorum"])
        // The dead-letter queue has no settings, so no policy; the policy comes after the
        // bindings (the ceilings' two policies went with the declarations, before them).
        #expect(policy("jobs.v1.dlq") == nil)
        let calls = broker.calls
        let lastBinding = try #require(calls.lastIndex(of: "POST binding"))
        #expect(calls[lastBinding...].filter { $0 == "PUT policy" }.count == 1)
        #expect(calls.filter { $0 == "PUT policy" }.count == 3)
    }

    /// A create of `spec` makes four calls more than the plain one: the dead-letter exchange,
    /// queue and binding, and the policy.
    static let createCalls = ProvisionerTests.createCalls + 4

    @Test func createCallsCountIsWhatTheFaultTableAssumes() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        #expect(broker.calls.count == Self.createCalls + 1)
    }

    @Test(arguments: 1...createCalls)
    func aFailureAtAnyStepOfACreateWithAPolicyLeavesNothingBehind(k: Int) async throws {
        broker.fail(call: k)
        if ProvisionerTests.unlockCalls.contains(k) {  // retried; the create goes on
            #expect(try await provisioner.create(team: "team-a", spec: spec).created)
            return
        }
        await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec)
        }
        #expect(broker.holdsNothing(of: vhost), "call \(k) (\(broker.calls[k - 1])) failed and left something behind")
        #expect(broker.state.withLock { $0.policies.isEmpty })
    }

    @Test func thePatternMatchesTheQueueNameOnly() {
        let plan = Topology(spec).policies
        #expect(plan.map(\.name) == ["warren.queue.jobs.v1"])
        #expect(plan.map(\.pattern) == [#"^jobs\.v1$"#])
    }

    @Test func aPatchChangesPolicySettingsInPlace() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        var changed = jobs
        changed.deliveryLimit = 2
        changed.messageTTLMilliseconds = 1000
        let health = try #require(try await provisioner.update(team: "team-a", name: "scoring", adding: TopologyAddition(queues: [changed])))
        #expect(health.environment.spec.queues == [changed])
        #expect(policy("jobs.v1")?["delivery-limit"] == 2)
        #expect(policy("jobs.v1")?["message-ttl"] == 1000)
        // The same queue, never deleted: the broker applies the policy to it as it is.
        #expect(!broker.calls.contains("DELETE policy"))
        #expect(broker.state.withLock { $0.queues["\(vhost)/jobs.v1"]?.arguments } == ["x-queue-type": "quorum"])
    }

    @Test func aPatchThatRemovesEverySettingRemovesThePolicy() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        _ = try await provisioner.update(team: "team-a", name: "scoring", adding: TopologyAddition(queues: [EnvironmentSpec.Queue(name: "jobs.v1")]))
        #expect(policy("jobs.v1") == nil)
        #expect(broker.calls.contains("DELETE policy"))
    }

    @Test func turningDeadLetteringOnMakesItsQueueAndExchange() async throws {
        var plain = spec
        plain.queues = [EnvironmentSpec.Queue(name: "jobs.v1")]
        _ = try await provisioner.create(team: "team-a", spec: plain)
        _ = try await provisioner.update(team: "team-a", name: "scoring", adding: TopologyAddition(queues: [EnvironmentSpec.Queue(name: "jobs.v1", deadLetter: true)]))
        broker.state.withLock { state in
            #expect(state.queues["\(vhost)/jobs.v1.dlq"] != nil)
            #expect(state.exchanges["\(vhost)/scoring.dlx"] != nil)
            #expect(state.bindings["\(vhost)/scoring.dlx/jobs.v1.dlq/jobs.v1"] != nil)
        }
        #expect(policy("jobs.v1")?["dead-letter-exchange"] == "scoring.dlx")
    }

    @Test(arguments: [
        (EnvironmentSpec.Queue(name: "jobs.v1", type: .classic), "queues[jobs.v1].type"),
        (EnvironmentSpec.Queue(name: "jobs.v1", singleActiveConsumer: true), "queues[jobs.v1].single_active_consumer"),
    ])
    func aChangeOfAFixedSettingIsAConflict(queue: EnvironmentSpec.Queue, field: String) async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.update(team: "team-a", name: "scoring", adding: TopologyAddition(queues: [queue]))
        }
        #expect(error?.code == .conflict)
        #expect(error?.fields == [field])
    }

    /// An environment made before policies: its queue holds its settings as arguments.
    func makeEarlierEnvironment() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        broker.state.withLock { state in
            state.policies = [:]
            state.queues["\(vhost)/jobs.v1"]?.arguments = [
                "x-queue-type": "quorum", "x-delivery-limit": 5, "x-dead-letter-exchange": "scoring.dlx",
                "x-dead-letter-routing-key": "jobs.v1", "x-message-ttl": 60_000, "x-max-length": 1000, "x-overflow": "reject-publish",
            ]
        }
    }

    @Test func anEarlierQueueIsRepairedAroundAndGetsItsPolicy() async throws {
        try await makeEarlierEnvironment()
        let repaired = try #require(try await provisioner.reconcile(team: "team-a", name: "scoring"))
        #expect(repaired.health.isComplete)
        #expect(policy("jobs.v1")?["message-ttl"] == 60_000)
        #expect(broker.state.withLock { $0.queues["\(vhost)/jobs.v1"]?.arguments["x-message-ttl"] } == 60_000)
    }

    @Test func anEarlierQueueThatDisagreesWithTheSpecStillFails() async throws {
        try await makeEarlierEnvironment()
        broker.state.withLock { $0.queues["\(vhost)/jobs.v1"]?.arguments["x-message-ttl"] = 5 }
        await #expect(throws: ProvisioningError.self) {
            try await provisioner.reconcile(team: "team-a", name: "scoring")
        }
    }

    @Test func aPatchOfAnArgumentHeldSettingIsAConflictThatChangesNothing() async throws {
        try await makeEarlierEnvironment()
        var changed = jobs
        changed.messageTTLMilliseconds = 1000
        changed.deadLetter = false
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.update(team: "team-a", name: "scoring", adding: TopologyAddition(queues: [changed]))
        }
        #expect(error?.code == .conflict)
        #expect(error?.fields == ["queues[jobs.v1].dead_letter", "queues[jobs.v1].message_ttl_ms"])
        #expect(error?.detail.contains("queue arguments") == true)
        #expect(policy("jobs.v1") == nil)
        let record = broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) }
        #expect(record?.spec == spec)
    }

    @Test func aPatchOfASettingTheEarlierQueueDoesNotHoldTakes() async throws {
        try await makeEarlierEnvironment()
        broker.state.withLock { $0.queues["\(vhost)/jobs.v1"]?.arguments["x-max-length"] = nil }
        var changed = jobs
        changed.maxLength = 10
        _ = try await provisioner.update(team: "team-a", name: "scoring", adding: TopologyAddition(queues: [changed]))
        #expect(policy("jobs.v1")?["max-length"] == 10)
    }
}
