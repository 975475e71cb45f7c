/// How an environment's broker objects are named. The names carry the ownership, so Warren
/// needs no database: "warren.{team}.{name}" is the vhost, "{vhost}.{incarnation}{8 hex}" each
/// of its users (environments made before incarnations: "{vhost}.{8 hex}").
/// Team and environment names cannot contain ".", so parsing is unambiguous and one
/// environment's user prefix never matches another environment's users.
public enum EnvironmentNaming {
    public static let prefix = "warren."

    public static func vhost(team: String, name: String) -> String {
        "\(prefix)\(team).\(name)"
    }

    /// The prefix of every vhost a team owns.
    public static func teamPrefix(_ team: String) -> String {
        "\(prefix)\(team)."
    }

    /// The prefix of every user made for an environment.
    public static func userPrefix(vhost: String) -> String {
        "\(vhost)."
    }

    /// Warren's own names inside an environment's vhost (its claim queue) start with this; tenant
    /// permissions exclude it and tenant resource names may not use it.
    public static let reservedResourcePrefix = "warren."

    /// The vhost where Warren keeps objects no tenant may reach (its record locks). It does not
    /// parse as an environment's vhost: it has no "{team}.{name}" part.
    public static let systemVhost = "warren.system"

    public static func newUserName(vhost: String, incarnation: String) -> String {
        userPrefix(vhost: vhost) + incarnation + randomHex()
    }

    public static func newIncarnation() -> String { randomHex() }

    static func isIncarnation(_ text: String) -> Bool {
        text.utf8.count == 8 && text.utf8.allSatisfy(isLowerHex)
    }

    /// 8 lowercase hex digits from the system's CSPRNG.
    private static func randomHex() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = String(UInt32.random(in: .min ... .max, using: &generator), radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte)
    }

    /// (team, name) of a Warren vhost, or nil for any other vhost.
    public static func parse(vhost: String) -> (team: String, name: String)? {
        guard vhost.hasPrefix(prefix) else { return nil }
        let parts = vhost.dropFirst(prefix.count).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let team = String(parts[0]), name = String(parts[1])
        guard NameRules.checkTeamName(team) == nil, NameRules.checkEnvironmentName(name) == nil else { return nil }
        return (team, name)
    }

    /// The vhost of an environment user, or nil for any other user.
    public static func vhost(ofUser user: String) -> String? {
        guard let dot = user.lastIndex(of: ".") else { return nil }
        let vhost = String(user[..<dot])
        guard parse(vhost: vhost) != nil, isUser(user, of: vhost) else { return nil }
        return vhost
    }

    /// Whether `user` is one of the users made for the environment whose vhost is `vhost`; with
    /// `incarnation`, one made for that incarnation (or, for a record older than incarnations,
    /// one of the 8-digit names of that time).
    public static func isUser(_ user: String, of vhost: String, incarnation: String? = nil) -> Bool {
        let prefix = userPrefix(vhost: vhost)
        guard user.hasPrefix(prefix) else { return false }
        let suffix = Substring(user.utf8.dropFirst(prefix.utf8.count))
        guard suffix.utf8.count == 8 || suffix.utf8.count == 16, suffix.utf8.allSatisfy(isLowerHex) else { return false }
        guard let incarnation else { return true }
        return incarnation.isEmpty ? suffix.utf8.count == 8 : suffix.utf8.count == 16 && suffix.hasPrefix(incarnation)
    }

    /// The incarnation a user name was issued for, or nil for a name older than incarnations.
    package static func incarnation(ofUser user: String) -> String? {
        guard let dot = user.lastIndex(of: ".") else { return nil }
        let suffix = user[user.index(after: dot)...]
        return suffix.utf8.count == 16 ? String(suffix.prefix(8)) : nil
    }
}
