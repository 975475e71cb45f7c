import ArgumentParser
import WarrenClient

// The generated enums as option values: ArgumentParser parses them by their raw values and
// lists those in --help, so a value openapi.yaml adds is accepted without a change here.
extension Components.Schemas.ExchangeType: ExpressibleByArgument {}
extension Components.Schemas.QueueType: ExpressibleByArgument {}
extension Components.Schemas.AdditionalRole: ExpressibleByArgument {}

/// `--queue NAME[:TYPE]`. Queue names may hold `:` themselves, so only a last part that is a
/// queue type (`quorum`, `classic`, `stream`) is read as the type; otherwise the whole is the name.
struct QueueArgument: ExpressibleByArgument {
    var name: String
    var type: Components.Schemas.QueueType?

    init?(argument: String) {
        if let colon = argument.lastIndex(of: ":"),
           let type = Components.Schemas.QueueType(rawValue: String(argument[argument.index(after: colon)...])) {
            name = String(argument[..<colon])
            self.type = type
        } else {
            name = argument
            type = nil
        }
        if name.isEmpty { return nil }
    }

    var spec: Components.Schemas.QueueSpec { .init(name: name, _type: type) }
}

/// `--bind QUEUE[=ROUTING_KEY]`: neither a queue name nor a routing key can hold `=`. Without
/// `=KEY` the routing key is left out, and Warren takes the empty one.
struct BindingArgument: ExpressibleByArgument {
    var queue: String
    var routingKey: String?

    init?(argument: String) {
        if let equals = argument.firstIndex(of: "=") {
            queue = String(argument[..<equals])
            routingKey = String(argument[argument.index(after: equals)...])
        } else {
            queue = argument
            routingKey = nil
        }
        if queue.isEmpty { return nil }
    }

    var binding: Components.Schemas.Binding { .init(queue: queue, routing_key: routingKey) }
}

/// The environment limits both create and patch take.
struct LimitOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Connections the environment may have open at once.", valueName: "n"))
    var maxConnections: Int?

    @Option(help: ArgumentHelp("Queues the environment's vhost may hold (its dead-letter queues and Warren's claim queue count too).", valueName: "n"))
    var maxQueues: Int?

    @Option(help: ArgumentHelp("Bytes of messages the environment's queues may hold together (at least 65536).", valueName: "n"))
    var maxBytes: Int64?

    var isEmpty: Bool { maxConnections == nil && maxQueues == nil && maxBytes == nil }

    var limits: Components.Schemas.Limits? {
        isEmpty ? nil : .init(max_queues: maxQueues, max_connections: maxConnections, max_bytes: maxBytes)
    }
}
