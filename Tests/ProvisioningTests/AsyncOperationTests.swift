@testable import BrokerState
@testable import EnvironmentModel
import FoundationEssentials
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport

/// Creates and deletes that answer before they finish (`finishInBackground`), against the fake
/// broker: what the answer promises, what the record says meanwhile and after, and what a
/// failure in the background leaves.
@Suite struct AsyncOperationTests {
    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }
    let spec = EnvironmentSpec(name: "batch-scoring")
    let vhost = "warren.team-a.batch-scoring"

    private func record() -> EnvironmentRecord? {
        broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) }
    }

    @Test func anAsynchronousCreateAnswersOnceTheVhostExistsAndFinishesInTheBackground() async throws {
        let provisioner = provisioner
        let result = try await provisioner.create(team: "team-a", spec: spec, finishInBackground: true)
        #expect(result.pending && result.created)
        // The answer's credentials are the ones the background makes: by name, and by password.
        let issued = try #require(result.credentials.first)
        #expect(EnvironmentNaming.isUser(issued.username, of: vhost))
        #expect(await provisioner.background.drain(within: .seconds(10)))
        #expect(record()?.state == .ready)
        broker.state.withLock { state in
            #expect(state.queues["\(vhost)/batch-scoring"] != nil)
            #expect(state.bindings["\(vhost)/batch-scoring/batch-scoring/batch-scoring"] != nil)
            let hash = state.users[issued.username] ?? ""
            // The salt is the hash's first 4 bytes: the same password with it gives the same hash.
            let salt = [UInt8](Data(base64Encoded: hash) ?? Data()).prefix(4).map { $0 }
            #expect(salt.count == 4 && RabbitPasswordHash.hash(password: issued.password, salt: salt) == hash)
        }
        // Asked again (asynchronously or not), the existing environment answers at once.
        let again = try await provisioner.create(team: "team-a", spec: spec, finishInBackground: true)
        #expect(!again.pending && !again.created)
    }

    @Test func aFailureInTheBackgroundLeavesTheRecordFailedWithTheReasonAndNoUser() async throws {
        let provisioner = provisioner
        // Call 21 of a create is the claim's declaration (see ProvisionerTests' table), the
        // first call after the answer: made to fail with a 500.
        broker.fail(call: 21)
        let result = try await provisioner.create(team: "team-a", spec: spec, finishInBackground: true)
        #expect(result.pending)
        #expect(await provisioner.background.drain(within: .seconds(10)))
        let failed = try #require(record())
        #expect(failed.state == .failed)
        #expect(failed.failureReason?.contains("claim") == true)
        #expect(failed.problem(in: vhost) == nil)
        #expect(broker.state.withLock { $0.users[result.credentials[0].username] } == nil)
        let health = try #require(try await provisioner.inspect(team: "team-a", name: spec.name))
        #expect(health.state == .failed && health.failureReason == failed.failureReason)

        // Nothing but a DELETE applies to it: a create, a rotation and a reconcile are conflicts
        // that name the reason.
        for operation in [
            { _ = try await provisioner.create(team: "team-a", spec: spec) },
            { _ = try await provisioner.issueCredentials(team: "team-a", name: spec.name, role: .full, revokeOthersAfter: nil) },
            { _ = try await provisioner.reconcile(team: "team-a", name: spec.name) },
        ] as [@Sendable () async throws -> Void] {
            await #expect { try await operation() } throws: { error in
                (error as? ProvisioningError)?.code == .conflict && (error as? ProvisioningError)?.detail.contains("claim") == true
            }
        }
        #expect(try await provisioner.delete(team: "team-a", name: spec.name, force: false))
        #expect(broker.state.withLock { $0.vhosts[vhost] } == nil)
        #expect(broker.indexed(team: "team-a") == [])
    }

    @Test func theJanitorRemovesAFailedEnvironmentOnceItsOwnerHadTheGraceToReadIt() async throws {
        let provisioner = provisioner
        broker.fail(call: 21)
        _ = try await provisioner.create(team: "team-a", spec: spec, finishInBackground: true)
        #expect(await provisioner.background.drain(within: .seconds(10)))
        #expect(record()?.state == .failed)
        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .milliseconds(200))
        #expect(try await janitor.sweep().removed == 0)
        #expect(record()?.state == .failed, "first seen now: the grace has not passed")
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await janitor.sweep().removed == 1)
        #expect(broker.state.withLock { $0.vhosts[vhost] } == nil)
    }

    @Test func anAsynchronousDeleteAnswersOnceMarkedAndFinishesInTheBackground() async throws {
        let provisioner = provisioner
        let made = try await provisioner.create(team: "team-a", spec: spec)
        #expect(try await provisioner.delete(team: "team-a", name: spec.name, force: false, finishInBackground: true))
        #expect(await provisioner.background.drain(within: .seconds(10)))
        broker.state.withLock { state in
            #expect(state.vhosts[vhost] == nil)
            #expect(state.users[made.credentials[0].username] == nil)
        }
        // What is gone is not found, asynchronously or not.
        #expect(try await provisioner.delete(team: "team-a", name: spec.name, finishInBackground: true) == false)
    }

    @Test func aPlatformInstanceNeverJoinsAnEnvironmentThatIsAnother() async throws {
        let provisioner = provisioner
        let mine = PlatformInstance(platform: "cf", instanceID: "1111", serviceID: "s", planID: "p")
        _ = try await provisioner.create(team: "team-a", spec: spec, platform: mine)
        #expect(record()?.platform == mine)
        // The same instance again joins it; /v1 (no platform) may too: it is the team's.
        #expect(try await provisioner.create(team: "team-a", spec: spec, platform: mine).created == false)
        #expect(try await provisioner.create(team: "team-a", spec: spec).created == false)
        for other in [
            PlatformInstance(platform: "cf", instanceID: "2222", serviceID: "s", planID: "p"),
            PlatformInstance(platform: "kf", instanceID: "1111", serviceID: "s", planID: "p"),
        ] {
            await #expect { try await provisioner.create(team: "team-a", spec: spec, platform: other) } throws: { error in
                (error as? ProvisioningError)?.fields == ["platform"]
            }
        }
        // Nor does an instance take over what /v1 made.
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "plain"))
        await #expect(throws: ProvisioningError.self) {
            try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "plain"), platform: mine)
        }
    }
}
