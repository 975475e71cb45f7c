/// Which names Warren accepts. Checked before anything reaches the broker: the broker itself
/// accepts NUL bytes and 5000-character vhost names, and misbehaves on "", "." and "..".
public enum NameRules {
    /// Environment and team names: they become part of vhost and user names, so they exclude
    /// ".", which Warren uses as the separator ("warren.{team}.{name}").
    public static func checkEnvironmentName(_ name: String) -> String? {
        checkSlug(name)
    }

    public static func checkTeamName(_ name: String) -> String? {
        checkSlug(name)
    }

    /// Exchange and queue names: 1-255 ASCII characters, none reserved by the broker ("amq.").
    public static func checkResourceName(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.utf8.count > 255 { return "must be at most 255 characters" }
        if name.hasPrefix("amq.") { return "must not start with \"amq.\" (reserved by RabbitMQ)" }
        if !name.utf8.allSatisfy({ isAlphanumeric($0) || "._:-".utf8.contains($0) }) {
            return "may contain only letters, digits, '.', '_', ':' and '-'"
        }
        return nil
    }

    /// Routing keys (and topic patterns): up to 255 ASCII characters; may be empty (fanout).
    public static func checkRoutingKey(_ key: String) -> String? {
        if key.utf8.count > 255 { return "must be at most 255 characters" }
        if !key.utf8.allSatisfy({ isAlphanumeric($0) || "._:*#-".utf8.contains($0) }) {
            return "may contain only letters, digits, '.', '_', ':', '*', '#' and '-'"
        }
        return nil
    }

    private static func checkSlug(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.utf8.count > 63 { return "must be at most 63 characters" }
        let bytes = Array(name.utf8)
        let lowerOrDigit: (UInt8) -> Bool = { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }
        if !lowerOrDigit(bytes[0]) { return "must start with a lowercase letter or a digit" }
        if !bytes.allSatisfy({ lowerOrDigit($0) || $0 == 0x2D }) {
            return "may contain only lowercase letters, digits and '-'"
        }
        return nil
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }
}

extension EnvironmentSpec {
    /// Every problem with the spec, as (API field name, reason); empty when it is valid.
    public func validate() -> [(field: String, reason: String)] {
        var problems: [(field: String, reason: String)] = []
        if let reason = NameRules.checkEnvironmentName(name) { problems.append(("name", reason)) }
        if let reason = NameRules.checkResourceName(exchange.name) { problems.append(("exchange.name", reason)) }
        if let reason = NameRules.checkResourceName(queue.name) { problems.append(("queue.name", reason)) }
        if let reason = NameRules.checkRoutingKey(routingKey) { problems.append(("routing_key", reason)) }
        return problems
    }
}
