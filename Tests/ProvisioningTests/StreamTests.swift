@testable import BrokerState
import Foundation
@testable import EnvironmentModel
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport
import WireFormat

/// Streams (`type: stream`): what a stream takes and refuses, where its settings go on the
/// broker, the segment cap that keeps it under the byte ceiling, and the producer's write.
@Suite struct StreamTests {
    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }

    func stream(_ settings: [String: JSONValue]) -> EnvironmentSpec.Queue {
        EnvironmentSpec.Queue(name: "events", settings: settings.merging(["type": "stream"]) { a, _ in a })
    }

    @Test(arguments: ["dead_letter", "message_ttl_ms", "max_length", "max_priority", "single_active_consumer", "delivery_limit", "consumer_timeout_ms"])
    func aStreamRefusesWhatMeansNothingForIt(field: String) {
        let value: JSONValue = field == "dead_letter" || field == "single_active_consumer" ? .bool(true) : .int(5000)
        let problems = stream([field: value]).problems(field: "queues[0]")
        #expect(problems.contains { $0.field == "queues[0].\(field)" }, "\(problems)")
    }

    @Test(arguments: ["max_age_seconds", "max_length_bytes", "stream_max_segment_size_bytes"])
    func streamSettingsNeedAStream(field: String) {
        let queue = EnvironmentSpec.Queue(name: "jobs", settings: [field: .int(100_000)])
        #expect(queue.problems(field: "queues[0]").map(\.reason) == [QueueSetting.needsStream])
        #expect(stream([field: .int(100_000)]).problems(field: "queues[0]").isEmpty)
    }

    @Test func retentionIsInThePolicyAndTheSegmentAnArgument() {
        let queue = stream(["max_age_seconds": 3600, "max_length_bytes": 1000, "stream_max_segment_size_bytes": 8192])
        let spec = EnvironmentSpec(name: "s", exchange: .init(name: "s", type: .direct), queues: [queue], bindings: [])
        let topology = Topology(spec)
        #expect(topology.queues[0].arguments == ["x-queue-type": "stream", "x-stream-max-segment-size-bytes": 8192])
        #expect(topology.policies[0].definition["max-age"] == "3600s")
        #expect(topology.policies[0].definition["max-length-bytes"] == 1000)
        // The answer shows what was asked; the record reads back the same queue.
        #expect(queue.answerFields["max_age_seconds"] == 3600)
    }

    @Test func segmentsAreCappedAtAQuarterOfTheShare() {
        let asked = stream(["stream_max_segment_size_bytes": 1_000_000])
        let plain = stream([:])
        let spec = EnvironmentSpec(name: "s", exchange: .init(name: "s", type: .direct), queues: [asked, plain, EnvironmentSpec.Queue(name: "q")], bindings: [])
        let capped = Topology(spec).cappingStreamSegments(queueBytes: 1 << 20)
        #expect(capped.queues[0].arguments["x-stream-max-segment-size-bytes"] == .int((1 << 20) / 4))
        #expect(capped.queues[1].arguments["x-stream-max-segment-size-bytes"] == .int((1 << 20) / 4))
        #expect(capped.queues[2].arguments["x-stream-max-segment-size-bytes"] == nil)
        let small = Topology(EnvironmentSpec(name: "s", exchange: .init(name: "s", type: .direct), queues: [stream(["stream_max_segment_size_bytes": 4096])], bindings: []))
        #expect(small.cappingStreamSegments(queueBytes: 1 << 20).queues[0].arguments["x-stream-max-segment-size-bytes"] == 4096)
    }

    @Test func retentionAboveTheShareIsRefusedNamingTheCeiling() {
        var spec = EnvironmentSpec(name: "s", exchange: .init(name: "s", type: .direct), queues: [stream(["max_length_bytes": .int(1 << 30)])], bindings: [])
        spec.limits = .init(maxQueues: 4, maxBytes: 1 << 22)
        let problems = Ceilings().problems(in: spec)
        #expect(problems.map(\.field) == ["queues[0].max_length_bytes"])
        #expect(problems.first?.reason.contains("limits.max_queue_bytes") == true)
    }

    @Test func theProducerMayWriteToTheStreamsTooAndOnlyThere() {
        let spec = EnvironmentSpec(name: "s", exchange: .init(name: "ex", type: .direct), queues: [stream([:]), EnvironmentSpec.Queue(name: "jobs")], bindings: [])
        #expect(Role.producer.permissions(for: spec).write == "^(ex|events)$")
        #expect(Role.consumer.permissions(for: spec).write == "^$")
        // Without a stream the producer's permission is what it always was.
        let plain = EnvironmentSpec(name: "s", exchange: .init(name: "ex", type: .direct), queues: [EnvironmentSpec.Queue(name: "jobs")], bindings: [])
        #expect(Role.producer.permissions(for: plain).write == "^ex$")
    }

    @Test func superStreamsAreMadeAsRabbitMQsToolsMakeThemAndRolesCoverThem() {
        var spec = EnvironmentSpec(name: "s", exchange: .init(name: "ex", type: .direct), queues: [EnvironmentSpec.Queue(name: "jobs")], bindings: [])
        spec.superStreams = [.init(name: "orders", partitions: 2)]
        #expect(spec.validate().isEmpty)
        let topology = Topology(spec)
        #expect(topology.exchanges.last == .init(name: "orders", type: "direct", arguments: ["x-super-stream": true]))
        #expect(topology.queues.suffix(2).map(\.name) == ["orders-0", "orders-1"])
        #expect(topology.bindings.suffix(2).map { [$0.routingKey: $0.arguments] } == [["0": ["x-stream-partition-order": 0]], ["1": ["x-stream-partition-order": 1]]])
        #expect(Role.producer.permissions(for: spec).write == "^(ex|orders|orders\\-0|orders\\-1)$")
        #expect(Role.consumer.permissions(for: spec).read == "^(jobs|orders\\-0|orders\\-1|orders)$")
        // The record keeps them; a spec without them encodes as before (its claim hash stays).
        let decoded = try? JSONDecoder().decode(EnvironmentSpec.self, from: JSONEncoder().encode(spec))
        #expect(decoded == spec)
        spec.superStreams = []
        #expect(String(decoding: (try? JSONEncoder().encode(spec)) ?? Data(), as: UTF8.self).contains("super_streams") == false)
    }

    @Test(arguments: [(0, "super_streams[0].partitions"), (17, "super_streams[0].partitions")])
    func partitionsOutOfRangeAreRefused(partitions: Int, field: String) {
        var spec = EnvironmentSpec(name: "s")
        spec.superStreams = [.init(name: "orders", partitions: partitions)]
        #expect(spec.validate().map(\.field) == [field])
    }

    @Test func aSuperStreamNamedLikeAnExchangeOrWithAPartitionNamedLikeAQueueIsRefused() {
        var spec = EnvironmentSpec(name: "s", exchange: .init(name: "s", type: .direct), queues: [EnvironmentSpec.Queue(name: "o-0")], bindings: [])
        spec.superStreams = [.init(name: "s", partitions: 1), .init(name: "o", partitions: 1)]
        #expect(spec.validate().map(\.field) == ["super_streams[0].name", "super_streams[1].name"])
    }

    @Test func superStreamsNeedRabbitMQ311() throws {
        var spec = EnvironmentSpec(name: "s")
        spec.superStreams = [.init(name: "orders", partitions: 2)]
        #expect(throws: ProvisioningError.self) { try spec.explicit(for: BrokerVersion(major: 3, minor: 10)) }
        #expect(try spec.explicit(for: BrokerVersion(major: 3, minor: 11)).superStreams.count == 1)
    }

    @Test func aStreamAddedByPatchIsWrittenByTheProducers() async throws {
        let spec = EnvironmentSpec(name: "grow", exchange: .init(name: "grow", type: .direct), queues: [EnvironmentSpec.Queue(name: "jobs")], bindings: [])
        let result = try await provisioner.create(team: "team-a", spec: spec, roles: [.full, .producer])
        let producer = try #require(result.credentials.first { $0.role == .producer }).username
        let vhost = result.environment.vhost
        _ = try await provisioner.update(team: "team-a", name: "grow", adding: TopologyAddition(queues: [stream([:])]))
        #expect(broker.state.withLock { $0.grants["\(vhost)/\(producer)"]?.write } == "^(grow|events)$")
    }

    @Test func theJanitorGivesOlderEnvironmentsTheStreamCeilings() async throws {
        let spec = EnvironmentSpec(name: "old", exchange: .init(name: "old", type: .direct), queues: [EnvironmentSpec.Queue(name: "jobs")], bindings: [])
        let result = try await provisioner.create(team: "team-a", spec: spec)
        let vhost = result.environment.vhost
        // As an environment made before streams had ceilings of their own.
        broker.state.withLock {
            $0.operatorPolicies["\(vhost)/warren.ceiling.streams"] = nil
            $0.policies["\(vhost)/warren.streams"] = nil
        }
        var records: [String: EnvironmentRecord] = [:]
        for info in try await broker.vhosts() {
            if case .valid(let record) = EnvironmentRecordStore.reading(info) { records[info.name] = record }
        }
        #expect(try await provisioner.reconcileCeilings(records) == 1)
        // Once: the next sweep finds them in place.
        #expect(try await provisioner.reconcileCeilings(records) == 0)
        #expect(broker.state.withLock { $0.operatorPolicies["\(vhost)/warren.ceiling.streams"] } != nil)
        #expect(broker.state.withLock { $0.policies["\(vhost)/warren.streams"] } != nil)
    }

    @Test func aCreateDeclaresTheStreamCappedAndTheVhostCapsTenantStreams() async throws {
        var spec = EnvironmentSpec(name: "s", exchange: .init(name: "s", type: .direct), queues: [stream(["max_age_seconds": 60])], bindings: [])
        spec.limits = .init(maxQueues: 4, maxBytes: 1 << 22)
        let result = try await provisioner.create(team: "team-a", spec: spec)
        let vhost = result.environment.vhost
        let state = broker.state.withLock { $0 }
        #expect(state.queues["\(vhost)/events"]?.arguments["x-stream-max-segment-size-bytes"] == .int((1 << 20) / 4))
        // A stream ignores a policy with a key it does not take: streams get policies of their own.
        #expect(state.policies["\(vhost)/warren.streams"] == ["stream-max-segment-size-bytes": .int((1 << 20) / 4)])
        #expect(state.operatorPolicies["\(vhost)/warren.ceiling.streams"]?.definition == ["max-length-bytes": .int(1 << 20)])
        #expect(state.policies["\(vhost)/warren.queue.events"] == ["max-age": "60s"])
    }
}
