/// How an environment's broker objects are named. The names carry the ownership, so Warren
/// needs no database: "warren.{team}.{name}" is the vhost, "{vhost}.{8 hex}" each of its users.
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

    public static func newUserName(vhost: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let suffix = UInt32.random(in: .min ... .max, using: &generator)
        let hex = String(suffix, radix: 16)
        return userPrefix(vhost: vhost) + String(repeating: "0", count: 8 - hex.count) + hex
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
        guard user.utf8.count > 9 else { return nil }
        let vhost = String(user.dropLast(9))
        guard parse(vhost: vhost) != nil, isUser(user, of: vhost) else { return nil }
        return vhost
    }

    /// Whether `user` is one of the users made for the environment whose vhost is `vhost`.
    public static func isUser(_ user: String, of vhost: String) -> Bool {
        let prefix = userPrefix(vhost: vhost)
        guard user.hasPrefix(prefix) else { return false }
        let suffix = user.dropFirst(prefix.count)
        return suffix.count == 8 && suffix.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
