import FoundationEssentials

/// Passwords for environment users: 24 bytes (192 bits) from the system CSPRNG
/// (`SystemRandomNumberGenerator` reads getrandom(2) on Linux), base64url without padding,
/// so 32 characters that need no escaping in most places.
public enum PasswordGenerator {
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
