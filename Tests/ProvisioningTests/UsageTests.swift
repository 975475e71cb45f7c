@testable import BrokerState
@testable import EnvironmentModel
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport

/// What /readyz and /metrics learn of the broker's alarms and the teams' use.
@Suite struct UsageTests {
    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }

    /// An alarm is named, and Warren stays ready: teams need it most then (a DELETE that
    /// frees the node), and the broker still takes administration.
    @Test func readinessNamesTheAlarmAndStaysReady() async throws {
        #expect(try await provisioner.readiness() == Readiness(rabbitmqVersion: "3.10.8", alarms: []))
        broker.nodeInfo.withLock { $0.memoryAlarm = true }
        #expect(try await provisioner.readiness().alarms.map(\.description) == ["memory alarm on node rabbit@fake"])
        broker.nodeInfo.withLock { $0 = NodeInfo(name: "rabbit@fake", diskAlarm: true) }
        #expect(try await provisioner.readiness().alarms.map(\.description) == ["disk alarm on node rabbit@fake"])
    }

    @Test func usageIsSummedPerTeamWithItsCeilings() {
        let ceilings = Ceilings(connections: 10, queues: 4, environmentBytes: 1000, users: 3)
        let usage = Usage.of(
            nodes: [NodeInfo(name: "rabbit@a")],
            queues: [
                "warren.team-a.one": QueueTotals(queues: 2, messages: 5, messageBytes: 50),
                "warren.team-a.two": QueueTotals(queues: 3, messages: 1, messageBytes: 7),
                "warren.team-b.one": QueueTotals(queues: 1),
                "warren.system": QueueTotals(queues: 9, messages: 9, messageBytes: 9),
                "/": QueueTotals(queues: 1, messages: 1, messageBytes: 1),
            ],
            connections: ["warren.team-a.one": 4, "warren.team-a.two": 1, "/": 7],
            users: [
                UserInfo(name: "warren.team-a.one.0123456789abcdef"), UserInfo(name: "warren.team-a.two.0123456789abcdef"),
                UserInfo(name: "warren.team-a.two.fedcba9876543210"), UserInfo(name: "warren.team-b.one.0123456789abcdef"),
                UserInfo(name: "warren.team-a.gone.0123456789abcdef"), UserInfo(name: "guest"),
            ],
            ceilings: ceilings)
        let a = usage.teams["team-a"]
        #expect(a != nil)
        #expect(a?.environments == 2)
        #expect(a?.connections == 5 && a?.connectionsCeiling == 20)
        #expect(a?.queues == 5 && a?.queuesCeiling == 8)
        #expect(a?.messageBytes == 57 && a?.messageBytesCeiling == 2000)
        #expect(a?.users == 3 && a?.usersCeiling == 6)
        #expect(usage.teams["team-b"]?.connections == 0 && usage.teams["team-b"]?.users == 1)
        #expect(Set(usage.teams.keys) == ["team-a", "team-b"])
    }

    @Test func aRoundReadsEachListingOnce() async throws {
        let collector = UsageCollector(provisioner: provisioner)
        #expect(collector.latest == nil)
        broker.nodeInfo.withLock { $0.diskAlarm = true }
        let usage = try await collector.collect()
        #expect(broker.calls.sorted() == ["GET connections", "GET nodes", "GET queues", "GET user limits"].sorted())
        #expect(usage.nodes.first?.diskAlarm == true)
        #expect(collector.latest == usage)
    }
}
