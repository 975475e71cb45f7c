/// One client connection. Owned by the event-loop thread and touched by no other.
final class Connection {
    /// The connection's place in its request/response cycle. Exactly one request is in
    /// progress at a time, so pipelined requests are answered strictly in order.
    enum Phase {
        /// Waiting for (the rest of) a request head.
        case readingHead
        /// The head is parsed; waiting until `contentLength` body bytes are buffered.
        case readingBody(HTTPRequestHead)
        /// The responder is working; reading is paused so a pipelining client cannot make us
        /// buffer without bound.
        case responding(isHEAD: Bool, keepAlive: Bool)
        /// The response is queued in `output` and draining to the socket.
        case writingResponse(keepAlive: Bool)
        /// The last response is out and our side is shut down (FIN sent); reading and
        /// discarding until the client closes, so unread request bytes do not turn close()
        /// into a TCP RST that could destroy the response before the client reads it.
        case lingering
    }

    let id: UInt64
    let fd: Int32
    var phase: Phase = .readingHead
    /// Received bytes not yet consumed by a request.
    var input: [UInt8] = []
    var parser: HTTPRequestParser
    /// Bytes to send; `outputSent` of them are already sent.
    var output: [UInt8] = []
    var outputSent = 0
    /// When the current timeout fires (monotonic ns), or nil for none.
    var deadline: UInt64?
    /// Whether the header timeout is running: it starts at accept or at the first byte of a
    /// request on a kept-alive connection, not when the previous response went out.
    var headTimerArmed = false
    var requestsServed = 0
    /// The interest currently registered with the event queue.
    var interest: IOEvents = []
    var lingerBytes = 0
    var isClosed = false
    /// `EventLoop.process` is running for this connection: a response written from inside it
    /// (an immediate one) leaves the next pipelined request to its loop rather than recursing.
    var isProcessing = false

    init(id: UInt64, fd: Int32, limits: HTTPParserLimits) {
        self.id = id
        self.fd = fd
        parser = HTTPRequestParser(limits: limits)
    }

    var hasPendingOutput: Bool { outputSent < output.count }

    /// What the event queue should watch for in the current phase.
    var wantedInterest: IOEvents {
        var wanted: IOEvents = []
        switch phase {
        case .readingHead, .readingBody, .lingering: wanted.insert(.readable)
        case .responding, .writingResponse: break
        }
        if hasPendingOutput { wanted.insert(.writable) }
        return wanted
    }

    var isReading: Bool { wantedInterest.contains(.readable) }
}
