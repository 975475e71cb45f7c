@testable import BrokerState
@testable import EnvironmentModel
import Foundation
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport
import WireFormat

/// The queue-settings table (`QueueSetting.all`) and what is derived from it: the record's
/// bytes as before the table, validation, the policy, the release rules, and the new setting
/// `consumer_timeout_ms` end to end over the fake broker.
@Suite struct QueueSettingsTests {
    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }

    func recordJSON(_ queue: EnvironmentSpec.Queue) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(queue), as: UTF8.self)
    }

    /// The bytes the compiler-made coding wrote before the table: the claim's hash is over
    /// them, and records on brokers hold them.
    @Test func theRecordIsWrittenAsBeforeTheTable() throws {
        #expect(try recordJSON(EnvironmentSpec.Queue(name: "jobs"))
            == #"{"dead_letter":false,"name":"jobs","single_active_consumer":false,"type":"quorum"}"#)
        let full = EnvironmentSpec.Queue(
            name: "jobs", type: .classic, deliveryLimit: 5, deadLetter: true, messageTTLMilliseconds: 60_000, maxLength: 100,
            overflow: .dropHead, singleActiveConsumer: true, maxPriority: 9)
        #expect(try recordJSON(full)
            == #"{"dead_letter":true,"delivery_limit":5,"max_length":100,"max_priority":9,"message_ttl_ms":60000,"name":"jobs","overflow":"drop-head","single_active_consumer":true,"type":"classic"}"#)
        let decoded = try JSONDecoder().decode(EnvironmentSpec.Queue.self, from: Data(try recordJSON(full).utf8))
        #expect(decoded == full)
        var timed = EnvironmentSpec.Queue(name: "jobs")
        timed.consumerTimeoutMilliseconds = 7_200_000
        #expect(try recordJSON(timed).contains(#""consumer_timeout_ms":7200000"#))
    }

    @Test(arguments: [
        // What the compiler-made decoding refused, refused still; nulls of optionals are unset.
        (#"{"name":"q","dead_letter":false,"single_active_consumer":false}"#, false),
        (#"{"name":"q","type":"lazy","dead_letter":false,"single_active_consumer":false}"#, false),
        (#"{"name":"q","type":"quorum","dead_letter":false,"single_active_consumer":false,"overflow":"drop"}"#, false),
        (#"{"name":"q","type":"quorum","single_active_consumer":false}"#, false),
        (#"{"name":"q","type":"quorum","dead_letter":false,"single_active_consumer":false,"max_length":null}"#, true),
        (#"{"name":"q","type":"quorum","dead_letter":false,"single_active_consumer":false,"max_length":"1"}"#, false),
    ])
    func recordsDecodeAsBefore(json: String, decodes: Bool) {
        let queue = try? JSONDecoder().decode(EnvironmentSpec.Queue.self, from: Data(json.utf8))
        #expect((queue != nil) == decodes)
    }

    @Test func everySettingHasOneEntryAndTheFieldsAreDistinct() {
        let fields = QueueSetting.all.map(\.field)
        #expect(Set(fields).count == fields.count)
        #expect(Set(QueueSetting.all.map(\.answerField)).count == fields.count)
        #expect(QueueSetting.all.filter(\.fixedAfterCreation).map(\.field) == ["type", "max_priority", "single_active_consumer", "stream_max_segment_size_bytes"])
        #expect(Provisioner.fixedSettings == "type, max_priority, single_active_consumer or stream_max_segment_size_bytes")
    }

    @Test(arguments: [(999, false), (1000, true), (604_800_000, true), (604_800_001, false)])
    func consumerTimeoutRange(value: Int, valid: Bool) {
        var queue = EnvironmentSpec.Queue(name: "jobs")
        queue.consumerTimeoutMilliseconds = value
        let problems = queue.problems(field: "queues[0]")
        if valid {
            #expect(problems.isEmpty)
        } else {
            #expect(problems.map(\.field) == ["queues[0].consumer_timeout_ms"])
            #expect(problems.map(\.reason) == ["must be from 1000 to 604800000"])
        }
    }

    /// RabbitMQ 4.3 ignores it on a classic queue: refused on every release.
    @Test func consumerTimeoutNeedsAQuorumQueue() {
        var queue = EnvironmentSpec.Queue(name: "jobs", type: .classic)
        queue.consumerTimeoutMilliseconds = 1
        #expect(queue.problems(field: "queue").map { "\($0.field) \($0.reason)" } == [
            "queue.consumer_timeout_ms needs a quorum queue", "queue.consumer_timeout_ms must be from 1000 to 604800000",
        ])
    }

    @Test func theExistingMessagesStayInTheirOrder() {
        let queue = EnvironmentSpec.Queue(
            name: "jobs", type: .classic, deliveryLimit: 0, messageTTLMilliseconds: -1, maxLength: -1, overflow: .rejectPublishDLX, maxPriority: 0)
        let problems = queue.problems(field: "queue")
        #expect(problems.map { "\($0.field) \($0.reason)" } == [
            "queue.delivery_limit needs a quorum queue", "queue.delivery_limit must be from 1 to 1000000",
            "queue.message_ttl_ms must be from 0 to 4294967296", "queue.max_length must be from 0 to 1099511627776",
            "queue.max_priority must be from 1 to 255",
        ])
    }

    @Test func thePolicyHoldsTheConsumerTimeoutAndTheArgumentsDoNot() {
        var queue = EnvironmentSpec.Queue(name: "jobs")
        queue.consumerTimeoutMilliseconds = 3_600_000
        #expect(Topology.policyDefinition(of: queue, deadLetterExchange: "x.dlx") == ["consumer-timeout": 3_600_000, "overflow": "reject-publish"])
        #expect(Topology.arguments(of: queue) == ["x-queue-type": "quorum"])
    }

    @Test func theReleaseRules() throws {
        var queue = EnvironmentSpec.Queue(name: "jobs", maxPriority: 5)
        queue.consumerTimeoutMilliseconds = 60_000
        let old = queue.explicit(for: BrokerVersion(parsing: "3.10.8"))
        #expect(old.refused?.setting == "consumer_timeout_ms")
        #expect(old.refused?.needs == BrokerVersion(major: 3, minor: 12))
        #expect(old.queue.type == .classic)
        let new = queue.explicit(for: BrokerVersion(parsing: "4.3.6"))
        #expect(new.refused == nil)
        #expect(new.queue.type == .quorum && new.queue.deliveryLimit == 20)
        #expect(queue.explicit(for: BrokerVersion(parsing: "3.12.0")).refused == nil)
        let error = #expect(throws: ProvisioningError.self) {
            try [EnvironmentSpec.Queue(name: "a"), queue].explicit(for: BrokerVersion(parsing: "3.10.8"))
        }
        #expect(error?.code == .unsupportedByRelease)
        #expect(error?.fields == ["queues[1].consumer_timeout_ms"])
        #expect(error?.fieldReason == "needs RabbitMQ 3.12 or later; this broker runs RabbitMQ 3.10")
    }

    func spec(timeout: Int?) -> EnvironmentSpec {
        var queue = EnvironmentSpec.Queue(name: "jobs")
        queue.consumerTimeoutMilliseconds = timeout
        return EnvironmentSpec(name: "inference", queue: queue)
    }

    func policy() -> [String: JSONValue]? {
        broker.state.withLock { $0.policies["warren.team-a.inference/warren.queue.jobs"] }
    }

    @Test func aCreateOnRabbitMQ4SetsTheConsumerTimeoutAndAPatchChangesItInPlace() async throws {
        broker.version.withLock { $0 = "4.3.6" }
        _ = try await provisioner.create(team: "team-a", spec: spec(timeout: 3_600_000))
        #expect(policy()?["consumer-timeout"] == 3_600_000)
        var changed = spec(timeout: 7_200_000).queue
        changed.deliveryLimit = 20
        let health = try await provisioner.update(team: "team-a", name: "inference", adding: TopologyAddition(queues: [changed]))
        #expect(health?.environment.spec.queue.consumerTimeoutMilliseconds == 7_200_000)
        #expect(policy()?["consumer-timeout"] == 7_200_000)
    }

    @Test func aCreateOnRabbitMQ310IsRefusedBeforeAnythingIsMade() async throws {
        let error = await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: spec(timeout: 3_600_000))
        }
        #expect(error?.code == .unsupportedByRelease)
        #expect(broker.calls == ["overview"])
        // The fake refuses the key as RabbitMQ 3.10 does, should anything send it.
        await #expect(throws: ManagementError.self) {
            try await broker.putPolicy(vhost: "v", name: "p", pattern: ".*", definition: ["consumer-timeout": 1000], priority: 0, applyTo: "queues")
        }
    }
}
