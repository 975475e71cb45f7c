import Crypto
import EnvironmentModel

/// The seal of a record's platform instance (see `PlatformInstance.seal`): HMAC-SHA256 with
/// the server secret over the team, the environment name, the platform and the instance id.
/// Whoever can write vhost descriptions can write any platform field, but not a seal that
/// holds without the secret; and a sealed field copied to another environment's record does
/// not hold there (the name differs). Binding passwords use the same secret over messages of
/// another shape (see `BindingIdentity`), so neither can stand for the other.
enum OSBSeal {
    static func make(secret: [UInt8], team: String, name: String, platform: String, instanceID: String) -> String {
        let message = Array("warren-osb-seal".utf8) + [0] + Array(team.utf8) + [0] + Array(name.utf8) + [0]
            + Array(platform.utf8) + [0] + Array(instanceID.utf8)
        return Hex.string(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
    }

    /// Whether the recorded platform instance carries the seal it must have; compared in
    /// constant time.
    static func holds(_ instance: PlatformInstance, secret: [UInt8], team: String, name: String) -> Bool {
        guard let seal = instance.seal else { return false }
        let expected = Array(make(secret: secret, team: team, name: name, platform: instance.platform, instanceID: instance.instanceID).utf8)
        let given = Array(seal.utf8)
        guard given.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(given, expected) { difference |= a ^ b }
        return difference == 0
    }
}
