import EnvironmentModel
import Logging
import Provisioning

/// The start-up check of the /v2 secret against what is on the broker. Every record a platform
/// provisioned carries a seal made with the secret of the Warren that wrote it; if none of
/// them verifies with this Warren's secret, the secret changed (a restart with a new file, or
/// two Warrens with different files), and every /v2 call on those instances would fail. So
/// the executable refuses to start on such records unless the operator says what is going on:
///
/// - a rotation (WARREN_OSB_PREVIOUS_SECRET_FILE holds the old secret): records sealed with
///   the old secret are resealed with the new one here, and binding passwords derived from the
///   old one are still recognised (see `OSBSecrets`);
/// - the old secret is lost (WARREN_OSB_ALLOW_UNVERIFIED_SEALS=1): Warren starts, and those
///   instances answer errors on /v2 (never "gone") until they are removed through /v1.
///
/// Only the records of the teams this Warren's platforms provision for are its concern:
/// Warrens serving other teams from the same broker may have secrets of their own. Records of
/// those teams naming a platform the platforms file does not have are reported too: a
/// platform renamed in the file can no longer act on its instances.
public struct OSBSealAudit: Sendable {
    public struct Outcome: Sendable, Equatable {
        /// Records whose seal verifies with the current secret.
        public var verified = 0
        /// Records sealed with the previous secret, resealed with the current one now.
        public var resealed = 0
        /// Vhosts whose record's seal verifies with neither secret.
        public var unverifiable: [String] = []
        /// "vhost (platform)" of records naming a platform the platforms file does not have.
        public var unknownPlatforms: [String] = []
    }

    let secrets: OSBSecrets
    let platforms: PlatformStore?

    public init(secret: [UInt8], previousSecret: [UInt8]?, platforms: PlatformStore?) {
        self.secrets = OSBSecrets(current: secret, previous: previousSecret)
        self.platforms = platforms
    }

    /// One listing of the vhosts, and one record write per record to reseal. A reseal that
    /// fails (the record changed meanwhile) is logged and left: that record still verifies
    /// with the previous secret while it is configured, and the next start-up tries again.
    public func run(_ provisioner: Provisioner, logger: Logger) async throws -> Outcome {
        var outcome = Outcome()
        let teams = platforms?.teams ?? []
        for found in try await provisioner.platformEnvironments() {
            let environment = found.environment
            guard let instance = found.platform, teams.contains(environment.team) else { continue }
            if let platforms, !platforms.knows(platform: instance.platform) {
                outcome.unknownPlatforms.append("\(environment.vhost) (\(instance.platform))")
            }
            switch secrets.verdict(instance, team: environment.team, name: environment.name) {
            case .current:
                outcome.verified += 1
            case .previous:
                let seal = secrets.seal(team: environment.team, name: environment.name, platform: instance.platform, instanceID: instance.instanceID)
                do {
                    try await provisioner.reseal(found, seal: seal)
                    outcome.resealed += 1
                } catch {
                    logger.warning("record not resealed; it stays sealed with the previous secret", metadata: [
                        "vhost": "\(environment.vhost)", "error": "\(error)",
                    ])
                }
            case .neither:
                outcome.unverifiable.append(environment.vhost)
            }
        }
        return outcome
    }

    /// The check at start-up, logged: nil to go on serving, or why Warren must not (records of
    /// its teams sealed with neither secret, and `allowUnverified` not set). A broker it cannot
    /// read is logged and not a refusal: an instance whose seal fails is still answered an
    /// error, never "gone", request by request.
    public func startUpCheck(_ provisioner: Provisioner, allowUnverified: Bool, logger: Logger) async -> String? {
        let outcome: Outcome
        do {
            outcome = try await run(provisioner, logger: logger)
        } catch {
            logger.warning("could not check the instance records' seals at start-up; an instance whose seal fails answers an error, never 'gone'", metadata: ["error": "\(error)"])
            return nil
        }
        if !outcome.unknownPlatforms.isEmpty {
            logger.error("instances provisioned by platforms the platforms file does not name: /v2 answers errors for them until the name is back", metadata: [
                "instances": "\(outcome.unknownPlatforms.prefix(10).joined(separator: ", "))", "count": "\(outcome.unknownPlatforms.count)",
            ])
        }
        if !outcome.unverifiable.isEmpty {
            let some = outcome.unverifiable.prefix(5).joined(separator: ", ")
            guard allowUnverified else {
                return "\(outcome.unverifiable.count) instance record(s) on the broker were sealed with another secret (\(some)). "
                    + "Start with the secret they were made with; or rotate: the new secret in WARREN_OSB_SECRET_FILE and the old one "
                    + "in WARREN_OSB_PREVIOUS_SECRET_FILE; or, if the old secret is lost, WARREN_OSB_ALLOW_UNVERIFIED_SEALS=1 (those "
                    + "instances then answer errors on /v2; remove them through /v1)"
            }
            logger.error("instance records sealed with another secret; starting anyway (WARREN_OSB_ALLOW_UNVERIFIED_SEALS=1): /v2 answers errors for them", metadata: [
                "instances": "\(some)", "count": "\(outcome.unverifiable.count)",
            ])
        }
        logger.info("instance records' seals checked", metadata: ["verified": "\(outcome.verified)", "resealed": "\(outcome.resealed)"])
        return nil
    }
}
