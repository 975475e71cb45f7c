@testable import BrokerState
@testable import EnvironmentModel
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport
import WireFormat

/// A queue or exchange a tenant made before Warren names it is adopted only when it is exactly
/// what Warren would make; otherwise the PATCH is a conflict that changes nothing.
@Suite struct AdoptionTests {
    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }
    let vhost = "warren.team-a.scoring"
    let spec = EnvironmentSpec(
        name: "scoring", exchange: .init(name: "scoring", type: .direct), queues: [EnvironmentSpec.Queue(name: "scoring", type: .classic)], bindings: [])

    /// A queue as a tenant declares it: classic, durable, no arguments (the broker lists none).
    func tenantQueue(_ name: String, _ change: (inout QueueInfo) -> Void = { _ in }) {
        var info = QueueInfo(vhost: vhost, name: name, durable: true)
        change(&info)
        broker.state.withLock { $0.queues["\(vhost)/\(name)"] = info }
    }

    func recordSpec() -> EnvironmentSpec? {
        broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description)?.spec }
    }

    func patch(_ queue: EnvironmentSpec.Queue) async throws -> EnvironmentHealth? {
        try await provisioner.update(team: "team-a", name: "scoring", adding: TopologyAddition(queues: [queue]))
    }

    @Test func aCreateReadsNothingBack() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        // The queue and exchange PUTs answered 201: no read of either follows (the one queue
        // read is of the claim, to learn who holds the name).
        #expect(!broker.calls.contains("GET exchange"))
        #expect(broker.calls.filter { $0 == "GET queue" }.count == 1)
    }

    /// How a tenant's queue differs, and how the 409 names it.
    static let differing: [(String, String, String)] = [
        ("transient", "durable false", "durable true"),
        ("auto-delete", "auto_delete true", "auto_delete false"),
        ("exclusive", "exclusive true", "exclusive false"),
        ("expiring", "x-expires 60000", "no x-expires"),
        ("length-limited", "x-max-length-bytes 10", "no x-max-length-bytes"),
    ]

    static func make(_ kind: String, _ queue: inout QueueInfo) {
        switch kind {
        case "transient": queue.durable = false
        case "auto-delete": queue.autoDelete = true
        case "exclusive": queue.exclusive = true
        case "expiring": queue.arguments["x-expires"] = 60_000
        default: queue.arguments["x-max-length-bytes"] = 10
        }
    }

    @Test(arguments: differing)
    func aQueueThatDiffersIsAConflictThatChangesNothing(kind: String, found: String, wanted: String) async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        tenantQueue("jobs") { Self.make(kind, &$0) }
        let error = await #expect(throws: ProvisioningError.self) {
            try await patch(EnvironmentSpec.Queue(name: "jobs", type: .classic))
        }
        #expect(error?.code == .conflict)
        #expect(error?.fields == ["queues[jobs]"])
        #expect(error?.detail.contains("queue jobs exists with \(found) where Warren makes \(wanted)") == true, "\(error?.detail ?? "")")
        #expect(recordSpec() == spec)
    }

    @Test func theDetailNamesEveryDifference() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        tenantQueue("jobs") { $0.durable = false; $0.arguments["x-expires"] = 60_000 }
        let error = await #expect(throws: ProvisioningError.self) {
            try await patch(EnvironmentSpec.Queue(name: "jobs", type: .classic))
        }
        #expect(error?.detail.contains("queue jobs exists with durable false, x-expires 60000 where Warren makes durable true, no x-expires") == true)
    }

    @Test func anExactlyMatchingQueueIsAdopted() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        tenantQueue("jobs")
        let health = try #require(try await patch(EnvironmentSpec.Queue(name: "jobs", type: .classic)))
        #expect(health.isComplete)
        #expect(recordSpec()?.queues.map(\.name) == ["scoring", "jobs"])
    }

    @Test func aDeadLetterQueueOfAnotherTypeIsAConflict() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        tenantQueue("jobs.dlq") { $0.type = "quorum"; $0.arguments["x-queue-type"] = "quorum" }
        let error = await #expect(throws: ProvisioningError.self) {
            try await patch(EnvironmentSpec.Queue(name: "jobs", type: .classic, deadLetter: true))
        }
        #expect(error?.code == .conflict)
        #expect(error?.fields == ["queues[jobs].dead_letter"])
        #expect(error?.detail.contains("type quorum where Warren makes type classic") == true, "\(error?.detail ?? "")")
        #expect(recordSpec() == spec)
    }

    @Test func aDeadLetterExchangeOfAnotherTypeIsAConflict() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        broker.state.withLock {
            $0.exchanges["\(vhost)/scoring.dlx"] = ExchangeInfo(vhost: vhost, name: "scoring.dlx", type: "fanout", durable: true)
        }
        let error = await #expect(throws: ProvisioningError.self) {
            try await patch(EnvironmentSpec.Queue(name: "jobs", type: .classic, deadLetter: true))
        }
        #expect(error?.code == .conflict)
        #expect(error?.fields == ["queues[jobs].dead_letter"])
        #expect(error?.detail.contains("type fanout where Warren makes type direct") == true, "\(error?.detail ?? "")")
        #expect(recordSpec() == spec)
    }

    @Test func aDeadLetterExchangeWithArgumentsIsAConflict() async throws {
        _ = try await provisioner.create(team: "team-a", spec: spec)
        broker.state.withLock {
            $0.exchanges["\(vhost)/scoring.dlx"] = ExchangeInfo(
                vhost: vhost, name: "scoring.dlx", type: "direct", durable: true, arguments: ["alternate-exchange": "elsewhere"])
        }
        let error = await #expect(throws: ProvisioningError.self) {
            try await patch(EnvironmentSpec.Queue(name: "jobs", type: .classic, deadLetter: true))
        }
        #expect(error?.code == .conflict)
        #expect(error?.detail.contains("alternate-exchange elsewhere where Warren makes no alternate-exchange") == true)
    }
}
