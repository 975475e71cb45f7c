import WireFormat

/// Super streams: one logical stream split into partitions, made as RabbitMQ's own tools make
/// it (`rabbitmq-streams add_super_stream NAME --partitions N`, read back from a 4.3 node): a
/// durable direct exchange NAME with the argument `x-super-stream: true`, N streams
/// `NAME-0` .. `NAME-{N-1}`, and a binding of each with the routing key "0" .. "{N-1}" and the
/// argument `x-stream-partition-order` (its index). A stream client's super stream producer
/// asks the broker for the partitions and routes each message to one (by a hash of its routing
/// key, or by the binding keys); its super stream consumer reads every partition. RabbitMQ 3.11
/// and later: on 3.10 a create that asks for one is refused with a 400 naming the release.
/// Fixed at creation (a PATCH takes no `super_streams`): growing a super stream re-routes keys.
extension EnvironmentSpec.SuperStream {
    public static let partitionRange = 1...16

    /// The partitions, in order.
    public var partitionNames: [String] {
        (0..<partitions).map { "\(name)-\($0)" }
    }
}

extension EnvironmentSpec {
    /// Every stream of the environment, its super streams' partitions included.
    public var streamNames: [String] {
        queues.filter { $0.type == .stream }.map(\.name) + superStreams.flatMap(\.partitionNames)
    }

    /// What a consumer reads of the super streams: the partitions, and the exchanges, which a
    /// stream client's super stream consumer asks for the partitions (on 4.3 the broker
    /// answered a consumer without read on the exchange with no partitions). Read on an
    /// exchange only lets a user bind from it, which also needs write on the queue: a consumer
    /// has none.
    var superStreamReads: [String] {
        superStreams.flatMap { $0.partitionNames + [$0.name] }
    }

    /// The problems of `super_streams`, as (API field, reason), for `validate()`.
    func superStreamProblems() -> [(field: String, reason: String)] {
        var problems: [(field: String, reason: String)] = []
        var taken = Set(queues.flatMap { [$0.name] + ($0.deadLetterQueue.map { [$0] } ?? []) })
        var exchanges: Set<String> = [exchange.name, Topology.deadLetterExchange(of: self)]
        if superStreams.count > 8 { problems.append(("super_streams", "may have at most 8 super streams")) }
        for (index, superStream) in superStreams.enumerated() {
            let field = "super_streams[\(index)]"
            if let reason = NameRules.checkResourceName(superStream.name) {
                problems.append(("\(field).name", reason))
            } else if superStream.name.hasPrefix(EnvironmentNaming.reservedResourcePrefix) {
                problems.append(("\(field).name", "must not start with \"warren.\" (reserved)"))
            } else if superStream.name.utf8.count > 252 {
                problems.append(("\(field).name", "must be at most 252 characters (its partitions are \"{name}-{n}\")"))
            } else if !exchanges.insert(superStream.name).inserted {
                problems.append(("\(field).name", "\(superStream.name) is already an exchange of the environment (a super stream is an exchange)"))
            }
            guard EnvironmentSpec.SuperStream.partitionRange.contains(superStream.partitions) else {
                let range = EnvironmentSpec.SuperStream.partitionRange
                problems.append(("\(field).partitions", "must be from \(range.lowerBound) to \(range.upperBound)"))
                continue
            }
            for partition in superStream.partitionNames where !taken.insert(partition).inserted {
                problems.append(("\(field).name", "its partition \(partition) is already a queue of the environment"))
                break
            }
        }
        return problems
    }
}

extension Topology {
    /// The exchanges, partitions and bindings of the spec's super streams.
    mutating func addSuperStreams(of spec: EnvironmentSpec) {
        for superStream in spec.superStreams {
            exchanges.append(ExchangePlan(name: superStream.name, type: EnvironmentSpec.ExchangeType.direct.rawValue, arguments: ["x-super-stream": true]))
            for (index, partition) in superStream.partitionNames.enumerated() {
                queues.append(QueuePlan(name: partition, arguments: ["x-queue-type": .string(EnvironmentSpec.QueueType.stream.rawValue)]))
                bindings.append(BindingPlan(
                    exchange: superStream.name, queue: partition, routingKey: "\(index)", arguments: ["x-stream-partition-order": .int(index)]))
            }
        }
    }
}
