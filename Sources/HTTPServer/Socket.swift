import Glibc

/// Socket set-up for the server: the listening socket and options on accepted sockets.
enum Socket {
    /// A non-blocking, close-on-exec TCP listener bound to `host:port`, with SO_REUSEADDR so a
    /// restart does not wait for old connections in TIME_WAIT. Closes it again on any failure.
    static func makeListener(host: String, port: Int, backlog: Int32 = 1024) throws -> Int32 {
        guard (0...65535).contains(port) else { throw HTTPServerError.invalidPort(port) }
        var address = try SocketAddress(host: host, port: UInt16(port))
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError.makeFailed("socket") }
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, name: "setsockopt(SO_REUSEADDR)")
            let rc = address.withSockaddr { bind(fd, $0, $1) }
            guard rc == 0 else { throw SocketError.makeFailed("bind \(host):\(port)") }
            guard listen(fd, backlog) == 0 else { throw SocketError.makeFailed("listen") }
            return fd
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    /// The port a socket is bound to (the kernel's pick when bound to port 0).
    static func boundPort(_ fd: Int32) throws(SocketError) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw SocketError.makeFailed("getsockname") }
        return Int(UInt16(bigEndian: withUnsafeBytes(of: &storage) { $0.loadUnaligned(fromByteOffset: 2, as: UInt16.self) }))
    }

    /// Accepts one connection as non-blocking and close-on-exec in a single call (accept4, as
    /// redis' anet.c does), so no other thread's fork/exec can inherit it in between.
    static func accept(_ listener: Int32) throws(SocketError) -> IOResult<Int32> {
        try retryingSyscall("accept4") {
            Linux.accept4(listener, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
        }
    }

    /// TCP_NODELAY: a response is one write, so Nagle's algorithm can only add latency.
    static func setNoDelay(_ fd: Int32) throws(SocketError) {
        try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, name: "setsockopt(TCP_NODELAY)")
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: Int32, name: String) throws(SocketError) {
        var value = value
        guard setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SocketError.makeFailed(name)
        }
    }

    /// "ip:port" of the peer, for debug logs.
    static func peerDescription(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard rc == 0 else { return "?" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: &storage) { raw -> String in
            let port = UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let addressOffset = family == AF_INET6 ? 8 : 4
            guard inet_ntop(family, raw.baseAddress! + addressOffset, &text, socklen_t(text.count)) != nil else { return "?" }
            let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// An IPv4 or IPv6 socket address from a numeric literal (no DNS: the server binds what it
/// is told, and a name lookup here would block).
struct SocketAddress {
    private var storage = sockaddr_storage()
    private let length: socklen_t
    let family: Int32

    init(host: String, port: UInt16) throws(HTTPServerError) {
        if host.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw .invalidAddress(host) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            family = AF_INET6
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw .invalidAddress(host) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            family = AF_INET
        }
    }

    mutating func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        let length = length
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
