import FoundationEssentials

/// Passwords for environment users: 24 bytes (192 bits) from the system CSPRNG
/// (`SystemRandomNumberGenerator` reads getrandom(2) on Linux), base64url without padding,
/// so 32 characters that need no escaping in most places.
public enum PasswordGenerator {
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let base64 = Data(bytes).base64EncodedString()
        return String(base64.compactMap { character -> Character? in
            switch character {
            case "+": "-"
            case "/": "_"
            case "=": nil
            default: character
            }
        })
    }
}
