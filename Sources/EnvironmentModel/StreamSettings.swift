import WireFormat

/// The settings only a stream takes (`type: stream`), in the queue settings table, and what a
/// stream is refused. A stream is a log: a consumer reads from an offset and nothing is
/// removed by consuming, so the settings of a queue that hands messages out and forgets them
/// (TTL, a length in messages, overflow, dead-lettering, a delivery limit, priorities) mean
/// nothing for it and are refused with the field named, never ignored.
///
/// Retention (`max_age_seconds`, `max_length_bytes`) is in the stream's policy, so PATCH changes
/// it in place. The segment size is a queue argument: RabbitMQ reads it when the stream is
/// declared and never again (as measured on 3.10, 4.0 and 4.3, a policy applied afterwards
/// does not change it). It matters for the ceilings: a stream applies its byte retention only
/// when a segment fills (RabbitMQ's default segment is 500 MB), so a stream of 1 MB retention
/// and default segments held 6 MB in our runs; with segments of a quarter of it, 1.02 MB.
/// Warren therefore declares every stream with segments of at most a quarter of the
/// environment's per-queue byte share (`Topology.cappingStreamSegments`), and the vhost's
/// overflow policy gives the streams a tenant declares itself the same cap.
extension QueueSetting {
    /// The reason of a setting a stream does not take.
    public static func notForStreams(_ why: String) -> String {
        "not for a stream: \(why)"
    }

    /// The reason of a setting only a stream takes, on any other queue.
    public static let needsStream = "needs type stream"

    /// The longest retention by age: ten years.
    public static let maxAgeLimit = 10 * 365 * 24 * 3600

    static let streamSettings: [QueueSetting] = [
        // Whole seconds, like the other durations of the API (`message_ttl_ms`): no unit to
        // parse; sent as RabbitMQ's "{n}s".
        .integer(
            "max_age_seconds", 1...maxAgeLimit, \.maxAgeSeconds,
            broker: [.policy("max-age") { queue, _ in queue.maxAgeSeconds.map { .string("\($0)s") } }],
            rules: { $0.type != .stream ? [QueueSetting.needsStream] : [] }),
        // At most the environment's per-queue byte share (`Ceilings.problems`): left out, the
        // operator's ceiling policy is the stream's retention.
        .integer(
            "max_length_bytes", 1...(1 << 50), \.maxLengthBytes,
            broker: [.policy("max-length-bytes") { queue, _ in queue.maxLengthBytes.map(JSONValue.int) }],
            rules: { $0.type != .stream ? [QueueSetting.needsStream] : [] }),
        // RabbitMQ refuses a segment above 3 GB; below 4 KiB a segment holds hardly a message.
        .integer(
            "stream_max_segment_size_bytes", 4096...3_000_000_000, \.streamMaxSegmentSizeBytes,
            broker: [.argument("x-stream-max-segment-size-bytes") { $0.streamMaxSegmentSizeBytes.map(JSONValue.int) }],
            fixed: true,
            rules: { $0.type != .stream ? [QueueSetting.needsStream] : [] }),
    ]
}

extension Topology {
    /// The largest segment a stream of an environment whose queues may hold `queueBytes` each
    /// is declared with: a quarter of it, so a stream holds at most about its retention plus
    /// one segment (see above).
    package static func streamSegmentCap(queueBytes: Int) -> Int {
        Swift.max(queueBytes / 4, 1)
    }

    /// The topology with every stream's segment size at most `streamSegmentCap`: what Warren
    /// declares (the spec keeps what the team asked; the broker is told the smaller).
    package func cappingStreamSegments(queueBytes: Int) -> Topology {
        let cap = Topology.streamSegmentCap(queueBytes: queueBytes)
        var topology = self
        for index in topology.queues.indices where topology.queues[index].arguments["x-queue-type"] == .string("stream") {
            let asked = topology.queues[index].arguments["x-stream-max-segment-size-bytes"]?.intValue ?? cap
            topology.queues[index].arguments["x-stream-max-segment-size-bytes"] = .int(Swift.min(asked, cap))
        }
        return topology
    }
}

extension Role {
    /// What a producer may write: the environment's exchange (and its super streams'), and its
    /// streams (super streams' partitions included), for the
    /// stream protocol (which needs write on the stream). Writing to a queue over AMQP only
    /// ever means binding it, which also needs read on the exchange: a producer has none.
    package static func producerWrite(for spec: EnvironmentSpec) -> String {
        let names = [spec.exchange.name] + spec.superStreams.map(\.name) + spec.streamNames
        if names.count == 1 { return "^\(Role.escaped(spec.exchange.name))$" }
        return "^(\(names.map(Role.escaped).joined(separator: "|")))$"
    }
}
