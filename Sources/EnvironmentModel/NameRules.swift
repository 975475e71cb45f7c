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
        // The management API has no way to name them (a path segment "." or ".." is a dot segment).
        if name == "." || name == ".." { return "must not be \".\" or \"..\"" }
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
    /// Fields of queues and bindings are named by position: "queues[1].max_priority".
    public func validate() -> [(field: String, reason: String)] {
        var problems: [(field: String, reason: String)] = []
        func check(_ field: String, _ reason: String?) {
            if let reason { problems.append((field, reason)) }
        }
        check("name", NameRules.checkEnvironmentName(name))
        check("exchange.name", NameRules.checkResourceName(exchange.name))
        if exchange.name.hasPrefix(EnvironmentNaming.reservedResourcePrefix) {
            problems.append(("exchange.name", "must not start with \"warren.\" (reserved)"))
        }
        if exchange.name.utf8.count > 251, queues.contains(where: \.deadLetter) {
            problems.append(("exchange.name", "must be at most 251 characters when a queue dead-letters (\"{exchange}.dlx\" is made)"))
        }

        if queues.isEmpty { problems.append(("queues", "must name at least one queue")) }
        if queues.count > 32 { problems.append(("queues", "may have at most 32 queues")) }
        var names = Set<String>()
        for (index, queue) in queues.enumerated() {
            let field = "queues[\(index)]"
            check("\(field).name", NameRules.checkResourceName(queue.name))
            if queue.name.hasPrefix(EnvironmentNaming.reservedResourcePrefix) { problems.append(("\(field).name", "must not start with \"warren.\" (reserved)")) }
            for made in [queue.name] + (queue.deadLetterQueue.map { [$0] } ?? []) where !names.insert(made).inserted {
                problems.append(("\(field).name", "\(made) is named twice (dead-letter queues are \"{queue}.dlq\")"))
            }
            if queue.deadLetter, queue.name.utf8.count > 251 {
                problems.append(("\(field).name", "must be at most 251 characters when it dead-letters (\"{queue}.dlq\" is made)"))
            }
            problems += queue.problems(field: field)
        }

        let queueNames = Set(queues.map(\.name))
        for (index, binding) in bindings.enumerated() {
            let field = "bindings[\(index)]"
            if !queueNames.contains(binding.queue) { problems.append(("\(field).queue", "must name one of the environment's queues")) }
            check("\(field).routing_key", NameRules.checkRoutingKey(binding.routingKey))
            if exchange.type == .headers {
                // No headers at all is allowed: such a binding takes every message.
                if let match = binding.arguments["x-match"], !["all", "any"].contains(match) {
                    problems.append(("\(field).arguments", "x-match must be all or any"))
                }
            } else if !binding.arguments.isEmpty {
                problems.append(("\(field).arguments", "only a headers exchange takes binding arguments"))
            }
            // Keys are AMQP short strings (bytes); values are long strings, limited here to 255
            // characters (as openapi.yaml counts them), not bytes.
            for (key, value) in binding.arguments where key.utf8.count > 255 || value.unicodeScalars.count > 255 || key.isEmpty {
                problems.append(("\(field).arguments", "keys must be 1-255 and values at most 255 characters"))
            }
        }
        if bindings.count > 64 { problems.append(("bindings", "may have at most 64 bindings")) }
        problems += superStreamProblems()
        if Set(bindings).count != bindings.count { problems.append(("bindings", "lists a binding twice")) }

        problems += agentProblems()

        if let maxQueues = limits.maxQueues {
            let needed = Topology(self).queueCount
            if maxQueues < needed || maxQueues > 10_000 {
                problems.append(("limits.max_queues", "must be from \(needed) (the queues Warren makes here, its claim queue included) to 10000"))
            }
        }
        if let maxConnections = limits.maxConnections, !(1...100_000).contains(maxConnections) {
            problems.append(("limits.max_connections", "must be from 1 to 100000"))
        }
        if let maxBytes = limits.maxBytes, !(EnvironmentSpec.Limits.minimumBytes...(1 << 50)).contains(maxBytes) {
            problems.append(("limits.max_bytes", "must be from \(EnvironmentSpec.Limits.minimumBytes) to \(1 << 50)"))
        }
        return problems
    }
}
