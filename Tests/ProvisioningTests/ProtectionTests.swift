@testable import BrokerState
@testable import EnvironmentModel
import FoundationEssentials
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport

/// Deletion protection over the fake broker: what Warren refuses on every release, what the
/// broker refuses from 4.1, the order of the record and broker halves and what each failure
/// between them leaves, and who may still delete (a rollback of the create that asked for it)
/// or never (the janitor).
@Suite struct ProtectionTests {
    let broker = FakeBroker()
    var provisioner: Provisioner {
        Provisioner(admin: broker, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }
    let vhost = "warren.team-a.ledger"

    var protectedSpec: EnvironmentSpec {
        var spec = EnvironmentSpec(name: "ledger")
        spec.protected = true
        return spec
    }

    func record() -> EnvironmentRecord? {
        broker.state.withLock { EnvironmentRecord.decode(description: $0.vhosts[vhost]?.description) }
    }

    /// The broker's own protection of the vhost (nil: the release does not say).
    func brokerProtected() -> Bool? {
        broker.state.withLock { $0.vhosts[vhost]?.protectedFromDeletion }
    }

    /// Every form of DELETE is refused as protected, and leaves the environment as it was.
    func expectEveryDeleteRefused(_ provisioner: Provisioner) async throws {
        for (force, async) in [(false, false), (true, false), (false, true), (true, true)] {
            let before = broker.state.withLock { ($0.vhosts, $0.users, $0.queues.keys.sorted()) }
            await #expect(throws: ProvisioningError.self, "force \(force), async \(async)") {
                do {
                    _ = try await provisioner.delete(team: "team-a", name: "ledger", force: force, finishInBackground: async)
                } catch let error as ProvisioningError {
                    #expect(error.code == .protected)
                    #expect(error.detail.contains(#"{"protected": false}"#))
                    throw error
                }
            }
            let after = broker.state.withLock { ($0.vhosts, $0.users, $0.queues.keys.sorted()) }
            #expect(before == after, "a refused delete changed the broker")
            #expect(record()?.state == .ready)
        }
    }

    @Test func onRabbitMQ310WarrenAloneRefusesEveryDeleteUntilThePatchLiftsIt() async throws {
        _ = try await provisioner.create(team: "team-a", spec: protectedSpec)
        #expect(record()?.spec.protected == true)
        #expect(brokerProtected() == nil)
        #expect(!broker.calls.contains("POST vhost protection"), "3.10 has no such call: never sent")
        try await expectEveryDeleteRefused(provisioner)

        let health = try #require(try await provisioner.setProtection(team: "team-a", name: "ledger", protected: false))
        #expect(health.environment.spec.protected == false)
        #expect(!broker.calls.contains("DELETE vhost protection"))
        #expect(try await provisioner.delete(team: "team-a", name: "ledger"))
        #expect(broker.state.withLock { $0.vhosts[vhost] } == nil)
    }

    @Test func onRabbitMQ43TheBrokerRefusesTooAndTheHalvesGoInTheirOrder() async throws {
        broker.version.withLock { $0 = "4.3.6" }
        _ = try await provisioner.create(team: "team-a", spec: protectedSpec)
        #expect(record()?.spec.protected == true)
        #expect(brokerProtected() == true)
        // A delete made on the broker itself (an operator's) is refused.
        await #expect(throws: ManagementError.self) { _ = try await broker.deleteVhost(vhost) }
        try await expectEveryDeleteRefused(provisioner)

        // Lifting: the broker's half first, then the record.
        var mark = broker.calls.count
        _ = try await provisioner.setProtection(team: "team-a", name: "ledger", protected: false)
        var calls = Array(broker.calls[mark...])
        let lifted = try #require(calls.firstIndex(of: "DELETE vhost protection"))
        let written = try #require(calls.lastIndex(of: "PUT vhost"))
        #expect(lifted < written)
        #expect(brokerProtected() == false && record()?.spec.protected == false)

        // Protecting: the record first, then the broker's half.
        mark = broker.calls.count
        _ = try await provisioner.setProtection(team: "team-a", name: "ledger", protected: true)
        calls = Array(broker.calls[mark...])
        #expect(try #require(calls.lastIndex(of: "PUT vhost")) < (try #require(calls.firstIndex(of: "POST vhost protection"))))
        #expect(brokerProtected() == true && record()?.spec.protected == true)

        _ = try await provisioner.setProtection(team: "team-a", name: "ledger", protected: false)
        #expect(try await provisioner.delete(team: "team-a", name: "ledger"))
        #expect(broker.state.withLock { $0.vhosts[vhost] } == nil)
    }

    /// Record written, broker call failed: Warren refuses the DELETE already, GET can tell the
    /// broker's half is missing, and reconcile puts it in place.
    @Test func aProtectWhoseBrokerCallFailsIsStillProtectedAndReconcileFinishesIt() async throws {
        broker.version.withLock { $0 = "4.3.6" }
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "ledger"))
        broker.fail(next: "POST vhost protection")
        await #expect(throws: ProvisioningError.self) {
            _ = try await provisioner.setProtection(team: "team-a", name: "ledger", protected: true)
        }
        #expect(record()?.spec.protected == true)
        #expect(brokerProtected() == false)
        try await expectEveryDeleteRefused(provisioner)
        #expect(try await provisioner.inspect(team: "team-a", name: "ledger")?.brokerProtected == false)

        _ = try await provisioner.reconcile(team: "team-a", name: "ledger")
        #expect(brokerProtected() == true)
    }

    /// The broker's half lifted behind Warren's back (an administrator, a definitions import):
    /// the janitor's sweep puts it back, from what its vhost listing shows, and leaves alone an
    /// environment whose protection was lifted through Warren.
    @Test func theJanitorPutsBackABrokerProtectionLiftedBehindWarrensBack() async throws {
        broker.version.withLock { $0 = "4.3.6" }
        _ = try await provisioner.create(team: "team-a", spec: protectedSpec)
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "scratch"))
        broker.state.withLock { $0.vhosts[vhost]?.protectedFromDeletion = false }
        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .seconds(60))
        let report = try await janitor.sweep()
        #expect(report.reprotected == 1)
        #expect(brokerProtected() == true)
        #expect(broker.state.withLock { $0.vhosts["warren.team-a.scratch"]?.protectedFromDeletion } != true)
        #expect(try await janitor.sweep().reprotected == 0, "nothing more to do")
    }

    /// Broker's half lifted, record write failed: the broker's half goes back, the record still
    /// says protected; the caller, told of a failure, finds it as protected as before.
    @Test func anUnprotectWhoseRecordWriteFailsPutsTheBrokersHalfBack() async throws {
        broker.version.withLock { $0 = "4.3.6" }
        _ = try await provisioner.create(team: "team-a", spec: protectedSpec)
        let mark = broker.calls.count
        broker.fail(next: "PUT vhost")
        await #expect(throws: ProvisioningError.self) {
            _ = try await provisioner.setProtection(team: "team-a", name: "ledger", protected: false)
        }
        let calls = Array(broker.calls[mark...])
        #expect(try #require(calls.firstIndex(of: "DELETE vhost protection")) < (try #require(calls.firstIndex(of: "POST vhost protection"))))
        #expect(record()?.spec.protected == true)
        #expect(brokerProtected() == true)
        try await expectEveryDeleteRefused(provisioner)
    }

    /// A protection that lands between a DELETE's first read and its `deleting` mark (under
    /// the record's lock) wins: the DELETE is refused and nothing changes.
    @Test func aProtectionThatLandsWhileADeleteBeginsWins() async throws {
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "ledger"))
        let vhost = vhost
        // Call 1 is the DELETE's read; before call 2 (the record's lock), the PATCH's write.
        broker.onCall.withLock {
            $0 = (2, { state in
                guard var record = EnvironmentRecord.decode(description: state.vhosts[vhost]?.description) else { return }
                record.spec.protected = true
                state.vhosts[vhost]?.description = record.encoded()
            })
        }
        await #expect(throws: ProvisioningError.self) {
            _ = try await provisioner.delete(team: "team-a", name: "ledger", force: true)
        }
        #expect(record()?.state == .ready && record()?.spec.protected == true)
        #expect(broker.state.withLock { $0.vhosts[vhost] } != nil)
    }

    /// A create that asked for protection and failed promised no one a protected environment:
    /// its rollback lifts both halves and removes it. One whose protection came from a PATCH
    /// while it ran stays.
    @Test func aFailedCreatesRollbackLiftsTheProtectionItAskedForOnly() async throws {
        broker.version.withLock { $0 = "4.3.6" }
        _ = try await provisioner.create(team: "team-a", spec: protectedSpec)
        let incarnation = try #require(record()?.incarnation)
        func reset() {
            broker.state.withLock { state in
                guard var record = EnvironmentRecord.decode(description: state.vhosts[vhost]?.description) else { return }
                record.state = .creating
                state.vhosts[vhost]?.description = record.encoded()
            }
        }
        reset()
        #expect(await provisioner.rollBack(vhost: vhost, incarnation: incarnation, users: [], askedProtection: false) == false)
        #expect(record()?.state == .creating && brokerProtected() == true, "a protection the create did not ask for stays")

        let mark = broker.calls.count
        #expect(await provisioner.rollBack(vhost: vhost, incarnation: incarnation, users: [], askedProtection: true))
        #expect(broker.state.withLock { $0.vhosts[vhost] } == nil)
        // The broker refuses the first DELETE (412); the record says unprotected by then, so
        // the protection is lifted and the DELETE sent again.
        #expect(broker.calls[mark...].filter { $0.hasPrefix("DELETE vhost") } == ["DELETE vhost", "DELETE vhost protection", "DELETE vhost"])
    }

    /// The janitor never deletes a protected environment: a `failed` one, or a `creating` one
    /// missing a part, stays past the grace until its owner lifts the protection.
    @Test func theJanitorNeverRemovesAProtectedEnvironment() async throws {
        _ = try await provisioner.create(team: "team-a", spec: protectedSpec)
        var incomplete = EnvironmentSpec(name: "half")
        incomplete.protected = true
        _ = try await provisioner.create(team: "team-a", spec: incomplete)
        broker.state.withLock { state in
            for (vhost, next) in [(vhost, EnvironmentRecord.State.failed), ("warren.team-a.half", .creating)] {
                guard var record = EnvironmentRecord.decode(description: state.vhosts[vhost]?.description) else { continue }
                record.state = next
                state.vhosts[vhost]?.description = record.encoded()
            }
            state.exchanges["warren.team-a.half/half"] = nil
        }
        let janitor = Janitor(provisioner: provisioner, uncheckedGrace: .zero)
        _ = try await janitor.sweep()  // first sighting
        let report = try await janitor.sweep()
        #expect(report.protectedLeft == 2)
        #expect(report.removed == 0)
        broker.state.withLock { state in
            #expect(state.vhosts[vhost] != nil && state.vhosts["warren.team-a.half"] != nil)
        }
        // Lifted by its owner (allowed on a failed environment), it goes with the next sweep.
        _ = try await provisioner.setProtection(team: "team-a", name: "ledger", protected: false)
        #expect(try await janitor.sweep().removed == 1)
        #expect(broker.state.withLock { $0.vhosts[vhost] } == nil)
    }

    /// A record that cannot be trusted says nothing Warren may act on, so a forced DELETE does
    /// not lift the broker's protection: refused before anything goes, the users included.
    @Test func aForcedDeleteOfAnUntrustedRecordDoesNotLiftTheBrokersProtection() async throws {
        broker.version.withLock { $0 = "4.3.6" }
        let created = try await provisioner.create(team: "team-a", spec: protectedSpec)
        broker.state.withLock { state in
            guard var record = EnvironmentRecord.decode(description: state.vhosts[vhost]?.description) else { return }
            record.team = "team-b"
            state.vhosts[vhost]?.description = record.encoded()
        }
        await #expect(throws: ProvisioningError.self) {
            _ = try await provisioner.delete(team: "team-a", name: "ledger", force: true)
        }
        broker.state.withLock { state in
            #expect(state.vhosts[vhost] != nil)
            #expect(state.users[created.credentials[0].username] != nil)
        }
        #expect(!broker.calls.contains("DELETE vhost protection"))
    }

    /// An unprotected spec encodes as before the field existed, so its claim (and a record
    /// written by an earlier Warren) stays the same; protection changes the claim.
    @Test func anUnprotectedSpecEncodesAsBeforeAndProtectionIsADifference() throws {
        let plain = EnvironmentSpec(name: "ledger")
        let json = String(decoding: try JSONEncoder().encode(plain), as: UTF8.self)
        #expect(!json.contains("protected"))
        #expect(try JSONDecoder().decode(EnvironmentSpec.self, from: Data(json.utf8)).protected == false)
        #expect(EnvironmentRecord.claimHash(of: plain) != EnvironmentRecord.claimHash(of: protectedSpec))
        #expect(protectedSpec.differences(from: plain) == ["protected"])
        let decoded = try JSONDecoder().decode(EnvironmentSpec.self, from: try JSONEncoder().encode(protectedSpec))
        #expect(decoded.protected)
    }
}
