extension EnvironmentSpec {
    /// A named role for one actor of an agent system: it may publish only the routing keys its
    /// `publish` patterns match (on the environment's topic exchange, where RabbitMQ checks
    /// routing keys: topic permissions) and consume only the queues `consume` names. Each gets
    /// credentials of its own at create, and rotations and revocations of its own after.
    public struct Agent: Sendable, Hashable, Codable {
        public var name: String
        /// AMQP topic patterns ("tasks.planner.*", "results.#").
        public var publish: [String]
        /// Queues of the environment (its dead-letter queues included).
        public var consume: [String]

        public init(name: String, publish: [String] = [], consume: [String] = []) {
            self.name = name
            self.publish = publish
            self.consume = consume
        }

        /// Agents per environment; each is a user, under the users ceiling as well.
        public static let maxCount = 16
        /// Patterns or queues per agent.
        public static let maxEntries = 16

        /// An agent's name: a lowercase slug of up to 32 characters, starting with a letter
        /// (it names the role in the API and goes into Kubernetes object names), and not a
        /// built-in role's.
        public static func checkName(_ name: String) -> String? {
            let bytes = Array(name.utf8)
            guard (1...32).contains(bytes.count) else { return "must be 1 to 32 characters" }
            guard (0x61...0x7A).contains(bytes[0]) else { return "must start with a lowercase letter" }
            let allowed: (UInt8) -> Bool = { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }
            guard bytes.allSatisfy(allowed) else { return "may contain only lowercase letters, digits and '-'" }
            if Role(builtIn: name) != nil { return "must not be a built-in role's name (full, producer, consumer)" }
            return nil
        }
    }

    /// The problems of `agents`, as (API field, reason).
    func agentProblems() -> [(field: String, reason: String)] {
        var problems: [(field: String, reason: String)] = []
        if agents.count > Agent.maxCount { problems.append(("agents", "may have at most \(Agent.maxCount) agents")) }
        let consumable = Set(consumableQueues)
        var names = Set<String>()
        for (index, agent) in agents.enumerated() {
            let field = "agents[\(index)]"
            if let reason = Agent.checkName(agent.name) {
                problems.append(("\(field).name", reason))
            } else if !names.insert(agent.name).inserted {
                problems.append(("\(field).name", "\(agent.name) is named twice"))
            }
            if agent.publish.isEmpty, agent.consume.isEmpty {
                problems.append((field, "must publish or consume something (publish, consume)"))
            }
            if agent.publish.count > Agent.maxEntries { problems.append(("\(field).publish", "may have at most \(Agent.maxEntries) patterns")) }
            if agent.consume.count > Agent.maxEntries { problems.append(("\(field).consume", "may name at most \(Agent.maxEntries) queues")) }
            if !agent.publish.isEmpty, exchange.type != .topic {
                problems.append(("\(field).publish", "needs a topic exchange: RabbitMQ checks the routing keys of publishes to topic exchanges only (exchange.type is \(exchange.type.rawValue))"))
            }
            for (position, pattern) in agent.publish.enumerated() {
                if let reason = TopicPattern.problem(pattern) { problems.append(("\(field).publish[\(position)]", reason)) }
            }
            for (position, queue) in agent.consume.enumerated() where !consumable.contains(queue) {
                problems.append(("\(field).consume[\(position)]", "must name one of the environment's queues or dead-letter queues, not \(queue)"))
            }
        }
        return problems
    }
}
