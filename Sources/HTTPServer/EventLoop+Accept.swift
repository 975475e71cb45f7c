import Glibc
import Logging

/// Accepting connections, and refusing them past the limits. Loop thread only.
extension EventLoop {
    func acceptConnections() {
        // Drain the accept queue, but at most a bounded batch per turn so established
        // connections are not starved; epoll is level-triggered and reports the rest.
        for _ in 0..<512 {
            guard listenerFD >= 0 else { return }
            let fd: Int32
            do {
                switch try Socket.accept(listenerFD) {
                case .wouldBlock: return
                case .processed(let accepted): fd = accepted
                }
            } catch {
                switch error.errorNumber {
                case EMFILE, ENFILE:
                    refuseWithSpareDescriptor()
                    return
                // accept(2): Linux reports network errors already pending on the new
                // connection from accept itself; that connection is gone, the next may be fine.
                case ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
                    continue
                default:
                    logger.error("accept failed", metadata: ["error": "\(error)"])
                    return
                }
            }
            guard openConnections.value < maxConnections else {
                refuse(fd)
                continue
            }
            openConnections.add()
            let id = nextConnectionID
            nextConnectionID += 1
            // Loops take connections in turn, this one first; a loop that has ended (the server
            // is stopping) gets none.
            let turn = nextPeer % (peers.count + 1)
            nextPeer &+= 1
            if turn == 0 {
                serve(fd, id: id)
            } else if !peers[turn - 1].adopt(fd, id: id) {
                closeDescriptor(fd)
                openConnections.remove()
            }
        }
    }

    /// Watches an accepted connection (already counted in `openConnections`) on this loop.
    func serve(_ fd: Int32, id: UInt64) {
        // A failure only costs latency, so it is not a reason to drop the connection.
        try? Socket.setNoDelay(fd)
        let connection = Connection(id: id, fd: fd, limits: limits)
        do {
            try queue.add(fd, id: connection.id, interest: .readable)
        } catch {
            closeDescriptor(fd)
            openConnections.remove()
            logger.error("could not watch an accepted connection", metadata: ["error": "\(error)"])
            return
        }
        connection.interest = .readable
        connections[connection.id] = connection
        connection.headTimerArmed = true
        setDeadline(connection, after: headerTimeout)
        if logger.logLevel <= .debug {
            logger.debug("accepted connection", metadata: [
                "connection": "\(connection.id)", "peer": "\(Socket.peerDescription(fd))",
            ])
        }
    }

    /// Over `maxConnections`: a short 503 and an immediate close, never a hang. The client
    /// has usually sent nothing yet, so the close does not reset the response away.
    private func refuse(_ fd: Int32) {
        _ = Self.overloadResponse.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        Glibc.shutdown(fd, Int32(SHUT_WR))
        // Whatever already arrived is read, so close() is less likely to answer it with RST.
        _ = recv(fd, readBuffer.baseAddress, readBuffer.count, Int32(MSG_DONTWAIT))
        closeDescriptor(fd)
        refusedSinceLog += 1
        let now = monotonicNanoseconds()
        // At most one log line per 10 s, however hard the server is hit.
        if now &- lastRefusalLog >= 10_000_000_000 || lastRefusalLog == 0 {
            logger.warning("refusing connections: at the connection limit", metadata: [
                "limit": "\(maxConnections)", "refused": "\(refusedSinceLog)",
            ])
            refusedSinceLog = 0
            lastRefusalLog = now
        }
    }

    /// Out of descriptors: free the reserve, accept the waiting connection, refuse it, and
    /// take the reserve back.
    private func refuseWithSpareDescriptor() {
        if spareFD >= 0 {
            closeDescriptor(spareFD)
            spareFD = -1
        }
        if case .processed(let fd)? = try? Socket.accept(listenerFD) { refuse(fd) }
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    static let overloadResponse: [UInt8] = HTTPResponseSerializer.serialize(
        .problem(status: 503, detail: "The server has too many open connections; try again shortly.",
                 headers: ["Retry-After": "1"]),
        isHEAD: false, keepAlive: false, date: nil)
}
