package import RabbitManagement

/// Why a provisioning operation failed. A struct with static codes rather than an enum, so a
/// later code (quota exceeded, say) breaks no caller that switches over it.
public struct ProvisioningError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The name exists with another spec (see `fields`), or the vhost is not Warren's.
        public static let conflict = Code("conflict")
        /// A broker call failed (see `step` and `cause`).
        public static let broker = Code("broker")
        /// A delete would drop messages and was not forced.
        public static let messagesPending = Code("messages-pending")
        /// The team already has as many environments as it may.
        public static let quotaExceeded = Code("quota-exceeded")
        /// The team issued credentials faster than the operator's ceiling (see `retryAfter`).
        public static let rateLimited = Code("rate-limited")
        /// The new vhost did not report itself running in time.
        public static let vhostNotReady = Code("vhost-not-ready")
        /// The environment is not there (any more): gone mid-operation, or never Warren's.
        public static let notFound = Code("not-found")
        /// The environment's record fails validation: reported, never acted on.
        public static let invalidRecord = Code("invalid-record")
        /// Another operation held the environment's record for longer than Warren waits, or a
        /// create ran past its deadline: nothing is wrong, try again.
        public static let busy = Code("busy")
        /// The broker's release does not take a setting the request asks for (see `fields`,
        /// `fieldReason`): the caller's to change, as an invalid field is.
        public static let unsupportedByRelease = Code("unsupported-by-release")
        /// A request field names what the environment does not have (an agent it never
        /// defined, say; see `fields`, `fieldReason`): a 400, as any invalid field.
        public static let invalidField = Code("invalid-field")
        /// The environment is protected from deletion: a DELETE changes nothing until a PATCH
        /// lifts the protection.
        public static let protected = Code("protected")
    }

    public var code: Code
    /// A sentence safe to show to the API's caller: no broker reason, no credential.
    public var detail: String
    /// For conflicts: the request fields whose values differ from the existing environment.
    public var fields: [String]
    /// For conflicts: why each of `fields` is refused, when it is not simply that it differs.
    public var fieldReason: String?
    /// For broker failures: the provisioning step that failed ("declare queue").
    public var step: String?
    /// For broker failures: the management API's own error. Internal: the layers above see
    /// only `cause`, for their log.
    package var underlying: ManagementError?
    /// For `rateLimited`: whole seconds until the request can succeed.
    public var retryAfterSeconds: Int?

    package init(
        code: Code, detail: String, fields: [String] = [], fieldReason: String? = nil, step: String? = nil, underlying: ManagementError? = nil
    ) {
        self.code = code
        self.detail = detail
        self.fields = fields
        self.fieldReason = fieldReason
        self.step = step
        self.underlying = underlying
    }

    /// A create that finds a DELETE of the same environment under way gives way to it.
    package static func beingDeleted(_ name: String) -> ProvisioningError {
        ProvisioningError(code: .conflict, detail: "environment \(name) is being deleted; create it again once the delete is done")
    }

    /// An asynchronous create of the environment failed: nothing but a DELETE applies to it.
    package static func failed(_ name: String, _ reason: String?) -> ProvisioningError {
        ProvisioningError(
            code: .conflict,
            detail: "environment \(name) failed to be created (\(reason ?? "no reason recorded")); DELETE it, then create it again")
    }

    /// An operation that began on one incarnation of a name found another in its place.
    package static func replaced(_ name: String) -> ProvisioningError {
        ProvisioningError(code: .conflict, detail: "environment \(name) was deleted and made anew while this request ran; nothing was changed")
    }

    /// The team has `limit` environments already: a create past that is refused with nothing made.
    package static func quotaExceeded(team: String, limit: Int) -> ProvisioningError {
        ProvisioningError(
            code: .quotaExceeded,
            detail: "team \(team) has as many environments as it may: the limit is \(limit); delete one first")
    }

    /// A DELETE of a protected environment: refused, nothing changed, and the way out said.
    package static func protected(_ name: String) -> ProvisioningError {
        ProvisioningError(
            code: .protected,
            detail: "environment \(name) is protected from deletion; to delete it, first lift the protection with PATCH /v1/environments/\(name) and the body {\"protected\": false}")
    }

    package static func gone(_ name: String) -> ProvisioningError {
        ProvisioningError(code: .notFound, detail: "no environment \(name)")
    }

    /// For broker failures: what the broker answered, for the log only (it can be an Erlang
    /// term, HTML, or name internals the API's caller has no business seeing).
    public var cause: String? { underlying.map { "\($0)" } }

    /// Whether the caller should simply try again later (503) rather than see a broker failure (502).
    public var isUnavailable: Bool {
        switch code {
        case .busy, .vhostNotReady: return true
        case .broker: return underlying.map { [.unreachable, .timeout, .tls].contains($0.code) } ?? false
        default: return false
        }
    }

    public var description: String {
        var text = "\(code): \(detail)"
        // The detail usually quotes the underlying summary already; add it only when it does not.
        if let underlying, !detail.contains(underlying.summary) { text += " (\(underlying))" }
        return text
    }
}
