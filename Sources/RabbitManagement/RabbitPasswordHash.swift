import Crypto
import FoundationEssentials

/// RabbitMQ's `rabbit_password_hashing_sha256` scheme, computed here so that a user's plaintext
/// password never travels to the broker (nor sits in a URL, as with `/api/auth/hash_password`).
///
/// `base64(salt4 || SHA-256(salt4 || utf8(password)))`, with 4 random salt bytes. Send it as
/// `password_hash` with `"hashing_algorithm": "rabbit_password_hashing_sha256"`.
public enum RabbitPasswordHash {
    public static let algorithm = "rabbit_password_hashing_sha256"

    /// Deterministic form, for tests against RabbitMQ's vector. `salt` should be 4 bytes.
    public static func hash(password: String, salt: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(data: salt)
        hasher.update(data: Array(password.utf8))
        let digest = hasher.finalize()
        return Data(salt + Array(digest)).base64EncodedString()
    }

    /// A fresh salt from the system CSPRNG (getrandom on Linux) on every call.
    public static func hash(password: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<4).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return hash(password: password, salt: salt)
    }

    /// Whether `hash` (this scheme's form) was made from `password`, whatever its salt. The
    /// comparison runs over every byte, so timing says nothing about how close a guess came.
    public static func verifies(password: String, hash: String) -> Bool {
        guard let decoded = Data(base64Encoded: hash), decoded.count == 4 + 32 else { return false }
        let bytes = Array(decoded)
        let expected = Array(Data(base64Encoded: self.hash(password: password, salt: Array(bytes[0..<4])))!)
        var difference: UInt8 = 0
        for (a, b) in zip(bytes, expected) { difference |= a ^ b }
        return difference == 0
    }
}
