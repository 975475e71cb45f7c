import Glibc

/// A failed system call, with the errno captured at the call site (before anything else can
/// overwrite it) and its strerror text.
public struct SocketError: Error, CustomStringConvertible, Equatable {
    /// The call that failed, e.g. "bind".
    public let operation: String
    public let errorNumber: Int32

    init(_ operation: String, errorNumber: Int32) {
        self.operation = operation
        self.errorNumber = errorNumber
    }

    /// Captures `errno` now; call it immediately after the failing call.
    static func makeFailed(_ operation: String) -> SocketError {
        SocketError(operation, errorNumber: errno)
    }

    public var isAddressInUse: Bool { errorNumber == EADDRINUSE }

    public var description: String {
        "\(operation) failed: \(String(cString: strerror(errorNumber))) (errno \(errorNumber))"
    }
}

/// Errors of the server's own making. A struct with a private code rather than an enum, so
/// new cases can be added without breaking anyone's exhaustive switch.
public struct HTTPServerError: Error, CustomStringConvertible, Equatable {
    private enum Code: Equatable {
        case invalidAddress(String)
        case invalidPort(Int)
        case alreadyStarted
        case threadStartFailed(Int32)
    }

    private let code: Code

    public static func invalidAddress(_ host: String) -> HTTPServerError { HTTPServerError(code: .invalidAddress(host)) }
    public static func invalidPort(_ port: Int) -> HTTPServerError { HTTPServerError(code: .invalidPort(port)) }
    public static let alreadyStarted = HTTPServerError(code: .alreadyStarted)
    static func threadStartFailed(_ error: Int32) -> HTTPServerError { HTTPServerError(code: .threadStartFailed(error)) }

    public var description: String {
        switch code {
        case .invalidAddress(let host): "'\(host)' is not an IPv4 or IPv6 address literal"
        case .invalidPort(let port): "\(port) is not a valid TCP port (0...65535)"
        case .alreadyStarted: "the server was already started; an HTTPServer starts once"
        case .threadStartFailed(let error): "could not start the event-loop thread: \(String(cString: strerror(error)))"
        }
    }
}
