import EnvironmentModel
import Provisioning

/// The /v2 server secret (WARREN_OSB_SECRET_FILE), and during a rotation the one before it
/// (WARREN_OSB_PREVIOUS_SECRET_FILE). New seals and new binding passwords use the current
/// secret; what the previous one made is still recognised, so that a restart with a new
/// secret never turns existing instances and bindings into ones Warren cannot act on. A
/// record sealed with neither is an error to whoever asks, never "gone": the platform would
/// forget credentials that still work.
struct OSBSecrets: Sendable {
    var current: [UInt8]
    var previous: [UInt8]?

    init(current: [UInt8], previous: [UInt8]? = nil) {
        self.current = current
        self.previous = previous
    }

    /// Which secret a record's seal was made with.
    enum Verdict: Equatable {
        case current, previous, neither
    }

    func seal(team: String, name: String, platform: String, instanceID: String) -> String {
        OSBSeal.make(secret: current, team: team, name: name, platform: platform, instanceID: instanceID)
    }

    func verdict(_ instance: PlatformInstance, team: String, name: String) -> Verdict {
        if OSBSeal.holds(instance, secret: current, team: team, name: name) { return .current }
        if let previous, OSBSeal.holds(instance, secret: previous, team: team, name: name) { return .previous }
        return .neither
    }

    /// The binding's credentials as the broker holds them: the password derived with whichever
    /// secret made the user's password hash, or nil when neither did (the secret changed with
    /// no rotation declared, or the hash is not one Warren writes).
    func bindingCredentials(environment: PlatformEnvironment, bindingID: String, role: Role, stored: StoredPassword) -> IssuedCredentials? {
        for secret in [current] + (previous.map { [$0] } ?? []) {
            let credentials = BindingIdentity.credentials(secret: secret, environment: environment, bindingID: bindingID, role: role)
            if stored.matches(credentials.password) { return credentials }
        }
        return nil
    }
}
