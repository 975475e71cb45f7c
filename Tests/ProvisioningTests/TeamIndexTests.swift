@testable import BrokerState
@testable import EnvironmentModel
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport
import WireFormat

/// The team's quota and list come from its index (`TeamIndex`), not from the broker's vhost
/// listing, which grows with every other team's environments.
@Suite struct TeamIndexTests {
    let broker = FakeBroker()

    func provisioner(limit: Int = 100) -> Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"),
                    vhostReadyTimeout: .seconds(2), maxEnvironmentsPerTeam: limit)
    }

    @Test func theQuotaHoldsInTheIndexAndADeleteFreesItsPlace() async throws {
        let p = provisioner(limit: 2)
        _ = try await p.create(team: "team-a", spec: EnvironmentSpec(name: "a"))
        _ = try await p.create(team: "team-a", spec: EnvironmentSpec(name: "b"))
        let error = await #expect(throws: ProvisioningError.self) {
            try await p.create(team: "team-a", spec: EnvironmentSpec(name: "c"))
        }
        #expect(error?.code == .quotaExceeded)
        #expect(broker.holdsNothing(of: "warren.team-a.c"))
        // Another team's quota is its own.
        _ = try await p.create(team: "team-b", spec: EnvironmentSpec(name: "c"))
        // A repeated create of an environment that exists is no new environment.
        _ = try await p.create(team: "team-a", spec: EnvironmentSpec(name: "a"))
        #expect(broker.indexed(team: "team-a") == ["a", "b"])

        #expect(try await p.delete(team: "team-a", name: "a"))
        #expect(broker.indexed(team: "team-a") == ["b"])
        _ = try await p.create(team: "team-a", spec: EnvironmentSpec(name: "c"))
        #expect(broker.indexed(team: "team-a") == ["b", "c"])
        #expect(try await p.list(team: "team-a").map(\.name) == ["b", "c"])
    }

    /// Environments made before there was an index count from the first create on.
    @Test func anIndexIsBuiltFromTheVhostsTheFirstTimeATeamNeedsOne() async throws {
        for name in ["x", "y"] {
            let record = EnvironmentRecord(team: "team-a", spec: EnvironmentSpec(name: name), createdAt: EnvironmentRecord.now(), state: .ready)
            try await broker.putVhost("warren.team-a.\(name)", description: record.encoded(), tags: [], defaultQueueType: nil)
        }
        let p = provisioner(limit: 3)
        // No index yet: the list comes from the vhost listing.
        #expect(try await p.list(team: "team-a").map(\.name) == ["x", "y"])
        _ = try await p.create(team: "team-a", spec: EnvironmentSpec(name: "z"))
        #expect(broker.indexed(team: "team-a") == ["x", "y", "z"])
        let error = await #expect(throws: ProvisioningError.self) {
            try await p.create(team: "team-a", spec: EnvironmentSpec(name: "w"))
        }
        #expect(error?.code == .quotaExceeded)
    }

    /// The list reads the index and the vhosts it names, never the whole listing.
    @Test func aListReadsTheIndexAndItsVhostsOnly() async throws {
        let p = provisioner()
        for name in ["b", "a"] { _ = try await p.create(team: "team-a", spec: EnvironmentSpec(name: name)) }
        _ = try await p.create(team: "team-b", spec: EnvironmentSpec(name: "other"))
        // A name whose vhost is gone (a crash between a delete's two steps) is not listed.
        broker.state.withLock { _ = $0.vhosts.removeValue(forKey: "warren.team-a.b") }
        let before = broker.calls.count
        #expect(try await p.list(team: "team-a").map(\.name) == ["a"])
        #expect(broker.calls[before...].sorted() == ["GET global parameter", "GET vhost", "GET vhost"])
    }

    /// A name without a vhost (its create or delete was cut short) leaves the index once the
    /// janitor has seen it so for the grace; a vhost the index misses goes in at once.
    @Test func theJanitorRepairsIndexes() async throws {
        let p = provisioner()
        _ = try await p.create(team: "team-a", spec: EnvironmentSpec(name: "kept"))
        let listed: JSONValue = ["environments": ["kept", "ghost"]]
        broker.state.withLock { $0.globalParameters["warren.team.team-a"] = listed }
        let record = EnvironmentRecord(team: "team-a", spec: EnvironmentSpec(name: "unlisted"), createdAt: EnvironmentRecord.now(), state: .ready)
        try await broker.putVhost("warren.team-a.unlisted", description: record.encoded(), tags: [], defaultQueueType: nil)

        let janitor = Janitor(provisioner: p, uncheckedGrace: .milliseconds(50))
        #expect(try await janitor.sweep().indexed == 1)
        #expect(broker.indexed(team: "team-a") == ["kept", "ghost", "unlisted"])
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await janitor.sweep().indexed == 1)
        #expect(broker.indexed(team: "team-a") == ["kept", "unlisted"])
        #expect(try await janitor.sweep().indexed == 0)
    }

    @Test func entriesThatAreNotEnvironmentNamesAreIgnored() {
        let value: JSONValue = ["environments": ["ok", "../x", .int(3), "ok", "Bad Name"]]
        #expect(TeamIndex.names(in: value) == ["ok"])
        #expect(TeamIndex.names(in: ["something": "else"]) == nil)
    }
}
