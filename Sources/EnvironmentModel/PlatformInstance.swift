/// Which Open Service Broker service instance an environment is: written by the /v2 API when
/// a platform provisions, kept in the environment's record (so no database is needed to map a
/// platform's instance id back to the environment), and shown by /v1 as well.
public struct PlatformInstance: Sendable, Hashable, Codable {
    /// The platform's name in Warren's platforms file (who provisioned it).
    public var platform: String
    /// The platform's own id for the instance (a GUID, as a rule).
    public var instanceID: String
    public var serviceID: String
    public var planID: String
    /// The OSB `context` object as the platform sent it (organization and space, or
    /// namespace), compact JSON; recorded, never acted on.
    public var context: String?
    /// An HMAC, made with the /v2 server secret, over the team, the environment name, the
    /// platform and the instance id: a platform field forged into a record (by anyone who can
    /// write vhost descriptions, or copied from another record) does not carry a valid one,
    /// and /v2 never acts on it. Hex; nil in records written without it.
    public var seal: String?

    public init(platform: String, instanceID: String, serviceID: String, planID: String, context: String? = nil, seal: String? = nil) {
        self.platform = platform
        self.instanceID = instanceID
        self.serviceID = serviceID
        self.planID = planID
        self.context = context
        self.seal = seal
    }

    enum CodingKeys: String, CodingKey {
        case platform, context, seal
        case instanceID = "instance_id"
        case serviceID = "service_id"
        case planID = "plan_id"
    }

    /// Why this may not be trusted as read back from a record, or nil. Anyone who can write a
    /// vhost description could have written it; nothing here steers Warren beyond matching an
    /// instance id, and sizes stay bounded.
    var problem: String? {
        for (field, value) in [("platform", platform), ("instance_id", instanceID), ("service_id", serviceID), ("plan_id", planID)] {
            if value.isEmpty || value.utf8.count > 255 { return "\(field) must be 1 to 255 characters" }
        }
        if let context, context.utf8.count > 4096 { return "context must be at most 4096 characters" }
        if let seal, seal.utf8.count > 128 { return "seal must be at most 128 characters" }
        return nil
    }
}
