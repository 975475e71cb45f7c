/// A transfer that could not be set up: libcurl refused to initialise, to hand out a handle, or
/// to take an option. A transfer that ran and failed (refused, timed out, TLS) is not an error
/// but a `TransferResult` with its curl code, so that each caller decides what it means.
///
/// `summary` names what libcurl refused, never a URL or a credential.
public struct CurlError: Error, Sendable, CustomStringConvertible {
    /// A struct with a private representation rather than an enum, so that kinds can be added
    /// without breaking callers that switch over them.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case initialisation, handle, option, thread
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// `curl_global_init` failed: no transfer can ever run in this process.
        public static let initialisation = Kind(.initialisation)
        /// libcurl could not create an easy or multi handle (out of memory).
        public static let handle = Kind(.handle)
        /// libcurl rejected an option of the request (or its header list could not be built).
        public static let option = Kind(.option)
        /// The loop's thread could not be started.
        public static let thread = Kind(.thread)

        public var description: String { base.rawValue }
    }

    public let kind: Kind
    public let summary: String

    public init(kind: Kind, summary: String) {
        self.kind = kind
        self.summary = summary
    }

    public var description: String { summary }
}
