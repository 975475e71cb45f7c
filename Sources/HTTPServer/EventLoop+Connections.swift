import Glibc
import Logging

/// The connection state machine: read, parse, dispatch, write, close. Loop thread only.
extension EventLoop {
    // MARK: Reading and parsing

    func read(_ connection: Connection) {
        let count: Int
        do {
            switch try retryingSyscall("recv", { recv(connection.fd, readBuffer.baseAddress, readBuffer.count, 0) }) {
            case .wouldBlock: return
            case .processed(let received): count = received
            }
        } catch {
            close(connection, reason: "\(error)")
            return
        }
        guard count > 0 else {
            close(connection, reason: "peer closed the connection")
            return
        }
        if case .lingering = connection.phase {
            connection.lingerBytes += count
            if connection.lingerBytes > lingerByteLimit { close(connection, reason: "closed after response") }
            return
        }
        connection.input.append(contentsOf: UnsafeRawBufferPointer(rebasing: readBuffer[..<count]))
        process(connection)
    }

    /// Advances the connection as far as its buffered bytes allow: parse a head, wait for the
    /// body, dispatch. Stops while a request is in flight (one at a time, in order). Requests
    /// answered immediately are written from inside this loop, which then goes on with the
    /// next buffered one: iteration, not recursion, however many a client pipelines.
    func process(_ connection: Connection) {
        guard !connection.isProcessing else { return }
        connection.isProcessing = true
        defer { connection.isProcessing = false }
        while !connection.isClosed {
            switch connection.phase {
            case .readingHead:
                guard !connection.input.isEmpty else { return }
                if !connection.headTimerArmed {
                    // The first byte of a new request: the idle timeout gives way to the header timeout.
                    connection.headTimerArmed = true
                    setDeadline(connection, after: headerTimeout)
                }
                switch connection.parser.parse(connection.input) {
                case .incomplete:
                    return
                case .invalid(let status, let detail):
                    fail(connection, status: status, detail: detail)
                    return
                case .complete(let head, let consumed):
                    connection.input.removeFirst(consumed)
                    connection.parser.reset()
                    connection.headTimerArmed = false
                    if connection.input.count >= head.contentLength {
                        dispatch(connection, head)
                    } else {
                        connection.phase = .readingBody(head)
                        setDeadline(connection, after: bodyTimeout)
                        if head.expectsContinue { queueOutput(connection, HTTPResponseSerializer.continueResponse) }
                    }
                }
            case .readingBody(let head):
                guard connection.input.count >= head.contentLength else { return }
                dispatch(connection, head)
            case .responding, .writingResponse, .lingering:
                return
            }
        }
    }

    /// Answers at once when the responder can (`respondImmediately`); otherwise runs it as a
    /// Task, off this thread, and its response comes back via `deliver`.
    private func dispatch(_ connection: Connection, _ head: HTTPRequestHead) {
        let body = Array(connection.input.prefix(head.contentLength))
        connection.input.removeFirst(head.contentLength)
        connection.phase = .responding(isHEAD: head.method == "HEAD", keepAlive: head.keepAlive && !shuttingDown)
        connection.deadline = nil
        logger.debug("request", metadata: [
            "connection": "\(connection.id)", "method": "\(head.method)", "path": "\(head.path)",
        ])
        let request = head.request(body: body)
        let id = connection.id
        if let response = responder.respondImmediately(to: request) {
            // The socket's interest stays as it is: reading resumes right after the write.
            respond(id, response)
            return
        }
        updateInterest(connection)
        let responder = responder
        Task {
            let response = await responder.respond(to: request)
            self.deliver(id, response)
        }
    }

    // MARK: Writing

    func respond(_ id: UInt64, _ response: HTTPResponse) {
        // The connection may be gone (peer hung up); then the response has nowhere to go.
        guard let connection = connections[id], case .responding(let isHEAD, let requestKeepAlive) = connection.phase else {
            return
        }
        let handlerCloses = response.headers.values("Connection").contains {
            $0.split(separator: ",").contains { $0.trimmingCharacters(in: " \t").lowercased() == "close" }
        }
        let keepAlive = requestKeepAlive && !shuttingDown && !handlerCloses
        connection.phase = .writingResponse(keepAlive: keepAlive)
        connection.requestsServed += 1
        logger.debug("response", metadata: ["connection": "\(id)", "status": "\(response.status)"])
        queueOutput(connection, HTTPResponseSerializer.serialize(
            response, isHEAD: isHEAD, keepAlive: keepAlive, date: dateCache.current()))
    }

    /// Answers a request the server itself refuses (problem+json, `Connection: close`); the
    /// connection closes once it is written, since its framing can no longer be trusted.
    func fail(_ connection: Connection, status: Int, detail: String) {
        logger.debug("refusing request", metadata: [
            "connection": "\(connection.id)", "status": "\(status)", "detail": "\(detail)",
        ])
        connection.phase = .writingResponse(keepAlive: false)
        connection.deadline = nil
        connection.input = []
        queueOutput(connection, HTTPResponseSerializer.serialize(
            .problem(status: status, detail: detail), isHEAD: false, keepAlive: false, date: dateCache.current()))
    }

    private func queueOutput(_ connection: Connection, _ bytes: [UInt8]) {
        if connection.hasPendingOutput {
            connection.output.append(contentsOf: bytes)
        } else {
            connection.output = bytes
            connection.outputSent = 0
        }
        flush(connection)
    }

    /// Sends as much as the kernel takes, the whole rest of the buffer in each call; on
    /// EAGAIN waits for EPOLLOUT.
    func flush(_ connection: Connection) {
        while connection.hasPendingOutput {
            let result: IOResult<Int>
            do {
                result = try retryingSyscall("send") {
                    connection.output.withUnsafeBytes { bytes in
                        // MSG_NOSIGNAL: a peer that went away gives EPIPE here, not a SIGPIPE
                        // that would kill the process.
                        send(connection.fd, bytes.baseAddress! + connection.outputSent,
                             bytes.count - connection.outputSent, Int32(MSG_NOSIGNAL))
                    }
                }
            } catch {
                close(connection, reason: "\(error)")
                return
            }
            switch result {
            case .processed(let sent):
                connection.outputSent += sent
            case .wouldBlock:
                // A client that stops reading must not pin the connection forever.
                if case .writingResponse = connection.phase, connection.deadline == nil {
                    setDeadline(connection, after: idleTimeout)
                }
                updateInterest(connection)
                return
            }
        }
        connection.output = []
        connection.outputSent = 0
        if case .writingResponse(let keepAlive) = connection.phase {
            responseWritten(connection, keepAlive: keepAlive)
        } else {
            updateInterest(connection)
        }
    }

    private func responseWritten(_ connection: Connection, keepAlive: Bool) {
        guard keepAlive && !shuttingDown else {
            beginLingeringClose(connection)
            return
        }
        connection.phase = .readingHead
        connection.deadline = nil
        if connection.input.isEmpty { setDeadline(connection, after: idleTimeout) }
        updateInterest(connection)
        // A pipelined request may already be buffered.
        process(connection)
    }

    /// RFC 9112 §9.6: close in stages. Shut down our sending side (the client reads the whole
    /// response, then EOF), keep reading and discarding for a short while, then close.
    private func beginLingeringClose(_ connection: Connection) {
        guard Glibc.shutdown(connection.fd, Int32(SHUT_WR)) == 0 else {
            close(connection, reason: "closed after response")
            return
        }
        connection.phase = .lingering
        connection.input = []
        setDeadline(connection, after: lingerTimeout)
        updateInterest(connection)
    }

    func updateInterest(_ connection: Connection) {
        let wanted = connection.wantedInterest
        guard wanted != connection.interest, !connection.isClosed else { return }
        do {
            try queue.modify(connection.fd, id: connection.id, interest: wanted)
            connection.interest = wanted
        } catch {
            close(connection, reason: "\(error)")
        }
    }

    func close(_ connection: Connection, reason: String) {
        guard !connection.isClosed else { return }
        connection.isClosed = true
        queue.remove(connection.fd)
        closeDescriptor(connection.fd)
        connections[connection.id] = nil
        openConnections.remove()
        logger.debug("closed connection", metadata: ["connection": "\(connection.id)", "reason": "\(reason)"])
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var result = self
        while let first = result.first, set.contains(first) { result.removeFirst() }
        while let last = result.last, set.contains(last) { result.removeLast() }
        return result
    }
}
