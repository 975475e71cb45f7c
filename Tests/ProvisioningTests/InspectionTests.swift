@testable import BrokerState
@testable import EnvironmentModel
import Logging
@testable import Provisioning
import RabbitManagement
import Testing
import WarrenTestSupport

/// Reading an environment while a DELETE removes it. Found by schemathesis on RabbitMQ 3.10: a
/// PATCH right after an asynchronous DELETE's 202 read the permissions of the vhost being
/// deleted, which 3.10 answers 400, and the PATCH answered 502 blaming the broker.
@Suite struct InspectionTests {
    let fake = FakeBroker()
    let vhost = "warren.team-a.fraud-scoring"
    var provisioner: Provisioner {
        Provisioner(admin: fake, serviceUser: "warren-admin", logger: Logger(label: "test"), vhostReadyTimeout: .seconds(2))
    }

    func markDeleting() {
        fake.state.withLock { state in
            guard var record = EnvironmentRecord.decode(description: state.vhosts[vhost]?.description) else { return }
            record.state = .deleting
            state.vhosts[vhost]?.description = record.encoded()
        }
    }

    @Test func aReadFailingUnderADeleteSaysDeleting() async throws {
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "fraud-scoring"))
        markDeleting()
        // The record is read first; a read of the parts then fails as the vhost goes.
        fake.fail(call: 2, with: ManagementError(code: .invalidRequest, status: 400, summary: "management API answered 400"))
        let health = try #require(try await provisioner.inspect(team: "team-a", name: "fraud-scoring"))
        #expect(health.state == .deleting)
        #expect(health.users.isEmpty)
    }

    @Test func aReadFailingBecauseTheVhostWentSaysGone() async throws {
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "fraud-scoring"))
        markDeleting()
        // The second call (a part) finds the vhost gone, and fails.
        fake.onCall.withLock { $0 = (2, { [vhost] state in state.vhosts[vhost] = nil }) }
        fake.fail(call: 2)
        #expect(try await provisioner.inspect(team: "team-a", name: "fraud-scoring") == nil)
    }

    @Test func aBrokerFailureOnAReadyEnvironmentIsStillTheBrokers() async throws {
        _ = try await provisioner.create(team: "team-a", spec: EnvironmentSpec(name: "fraud-scoring"))
        fake.fail(call: 2)
        await #expect(throws: ProvisioningError.self) { try await provisioner.inspect(team: "team-a", name: "fraud-scoring") }
    }
}
