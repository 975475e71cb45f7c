import EnvironmentModel
import Logging
internal import RabbitManagement

/// What the state Warren keeps on the broker (records and their claims, locks, team indexes)
/// needs to reach it: the management API, a logger, Warren's own user, and the bounds every
/// call keeps. The operations hold one (inside `Provisioner`) and hand it down, so the stores
/// never see the operations that use them.
package struct BrokerSession: Sendable {
    package private(set) var admin: any BrokerAdmin
    package private(set) var logger: Logger
    /// Warren's own management user. It gets permissions on every vhost it manages: the
    /// administrator tag alone does not reach resources inside a vhost.
    package let serviceUser: String
    /// How long a new vhost may take to report `running` on every node.
    let vhostReadyTimeout: Duration
    /// The longest one broker call can take (the management timeout, once per node tried).
    /// The lease of record locks is derived from it.
    package let longestCall: Duration
    /// This process's turns for the broker-held locks (see `LocalLocks`); shared by every copy.
    package let localLocks: LocalLocks

    /// The deadline of the create this task belongs to; steps past it fail as `busy`.
    @TaskLocal package static var deadline: ContinuousClock.Instant?

    package init(admin: any BrokerAdmin, logger: Logger, serviceUser: String, vhostReadyTimeout: Duration, longestCall: Duration) {
        self.admin = admin
        self.logger = logger
        self.serviceUser = serviceUser
        self.vhostReadyTimeout = vhostReadyTimeout
        self.longestCall = longestCall
        self.localLocks = LocalLocks()
    }

    /// How long a record lock outlives a holder that died (see `RecordLock`): longer than a
    /// holder can take for its read and its write, each one broker call, with a third for slack.
    package var recordLockLease: Duration { max(.seconds(5), longestCall * 3) }

    /// A copy whose broker calls log through `logger` (which carries the request id).
    package func logging(to logger: Logger) -> BrokerSession {
        var copy = self
        copy.admin = admin.logging(to: logger)
        copy.logger = logger
        return copy
    }

    /// Runs one broker call, naming the step in the error when it fails.
    package func step<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        if let deadline = Self.deadline, start > deadline {
            throw ProvisioningError(code: .busy, detail: "the create did not finish in time (the broker is slow); nothing was kept, try again", step: name)
        }
        do {
            let result = try await body()
            BrokerCallMetrics.brokerCall(step: name, since: start)
            return result
        } catch let error as ManagementError {
            BrokerCallMetrics.brokerCall(step: name, since: start)
            BrokerCallMetrics.brokerError(step: name, kind: error.code.description)
            // Unreachable and timed-out calls name a node's address in their summary: internal
            // detail the API's callers need not see (it stays in the log).
            let why = switch error.code {
            case .unreachable: "the management API could not be reached"
            case .timeout: "the management API did not answer in time"
            case .tls: "the management API's TLS certificate could not be verified"
            default: error.summary
            }
            throw ProvisioningError(code: .broker, detail: "the broker failed to \(name): \(why)", step: name, underlying: error)
        }
    }

    /// A new vhost is not usable the moment PUT returns: declaring into it can fail until
    /// every node reports it running (declaring into it early can fail with 401 or
    /// `vhost_supervisor_not_running`).
    package func waitUntilRunning(_ vhost: String) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + vhostReadyTimeout
        var pause = Duration.milliseconds(5)
        while true {
            guard let info = try await step("wait for vhost", { try await admin.vhost(vhost) }) else {
                throw ProvisioningError(code: .broker, detail: "the vhost disappeared while it was being created", step: "wait for vhost")
            }
            if info.isRunning { return }
            guard clock.now + pause < deadline else {
                throw ProvisioningError(code: .vhostNotReady, detail: "vhost did not start on every broker node in time", step: "wait for vhost")
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(200))
        }
    }

    /// Gives Warren's own user every permission in `vhost`: what it needs to declare, read
    /// and purge there (its administrator tag does not reach inside a vhost).
    package func grantServiceUser(in vhost: String) async throws {
        try await step("grant service permissions") {
            try await admin.putPermissions(vhost: vhost, user: serviceUser, configure: ".*", write: ".*", read: ".*")
        }
    }
}
