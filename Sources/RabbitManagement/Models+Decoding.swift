import WireFormat
/// Reading the broker's JSON into the model types, leniently where versions differ (tags as
/// "a,b" in 3.x and as an array in 4.x) and strictly where a field is the point (names).

struct JSONFields {
    let fields: [String: JSONValue]
    let what: String

    init(_ value: JSONValue, what: String) throws(ManagementError) {
        guard case .object(let fields) = value else { throw JSONFields.invalid(what) }
        self.fields = fields
        self.what = what
    }

    static func invalid(_ what: String) -> ManagementError {
        ManagementError(code: .invalidResponse, summary: "management API returned an unexpected \(what)")
    }

    func string(_ key: String) throws(ManagementError) -> String {
        guard let value = fields[key]?.stringValue else { throw JSONFields.invalid(what) }
        return value
    }

    func optionalString(_ key: String) -> String? {
        fields[key]?.stringValue
    }

    /// Strings as they are; any other JSON value rendered compactly (vhost descriptions may be
    /// any JSON value).
    func text(_ key: String) -> String {
        switch fields[key] {
        case nil, .null?: return ""
        case .string(let value)?: return value
        case let other?: return other.compactJSON
        }
    }

    func bool(_ key: String, default fallback: Bool) -> Bool {
        fields[key]?.boolValue ?? fallback
    }

    func int(_ key: String) -> Int? {
        fields[key]?.intValue
    }

    func object(_ key: String) -> [String: JSONValue] {
        fields[key]?.objectValue ?? [:]
    }

    /// `"a,b"`, `""`, `["a","b"]` or absent.
    func tags(_ key: String) -> [String] {
        switch fields[key] {
        case .string(let joined)?:
            return joined.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        case .array(let items)?:
            return items.compactMap(\.stringValue)
        default:
            return []
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

/// A listing's items. An item that is an empty array is skipped: RabbitMQ 3.10 lists `[]` in
/// place of an object (a vhost, a user) deleted while the listing was being made.
func decodeList<T>(_ value: JSONValue, what: String, _ element: (JSONValue) throws(ManagementError) -> T) throws(ManagementError) -> [T] {
    guard case .array(let items) = value else { throw JSONFields.invalid(what) }
    var out: [T] = []
    out.reserveCapacity(items.count)
    for item in items where !isGoneFromListing(item) {
        out.append(try element(item))
    }
    return out
}

/// Objects deleted while the broker renders a listing come back as `[]` (3.10), or as `null`
/// or `{}`: gone, so left out.
func isGoneFromListing(_ item: JSONValue) -> Bool {
    switch item {
    case .array(let inner): return inner.isEmpty
    case .object(let fields): return fields.isEmpty
    case .null: return true
    default: return false
    }
}

extension Overview {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "overview")
        guard let version = f.optionalString("rabbitmq_version") ?? f.optionalString("product_version") else {
            throw JSONFields.invalid("overview")
        }
        self.init(rabbitmqVersion: version, managementVersion: f.optionalString("management_version"),
                  erlangVersion: f.optionalString("erlang_version"), clusterName: f.optionalString("cluster_name"),
                  node: f.optionalString("node"))
    }
}

extension WhoAmI {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "whoami answer")
        self.init(name: try f.string("name"), tags: f.tags("tags"))
    }
}

extension VhostInfo {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "vhost")
        let metadata = JSONFields.lenient(f.fields["metadata"])
        var queueType = f.optionalString("default_queue_type") ?? metadata?.optionalString("default_queue_type")
        if queueType == "undefined" || queueType == "" { queueType = nil }
        self.init(
            name: try f.string("name"),
            description: f.fields["description"] != nil ? f.text("description") : (metadata?.text("description") ?? ""),
            tags: f.fields["tags"] != nil ? f.tags("tags") : (metadata?.tags("tags") ?? []),
            clusterState: f.object("cluster_state").compactMapValues(\.stringValue),
            defaultQueueType: queueType,
            protectedFromDeletion: f.fields["protected_from_deletion"]?.boolValue
                ?? metadata?.fields["protected_from_deletion"]?.boolValue)
    }
}

extension JSONFields {
    static func lenient(_ value: JSONValue?) -> JSONFields? {
        guard let value else { return nil }
        return try? JSONFields(value, what: "")
    }
}

extension UserInfo {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "user")
        self.init(name: try f.string("name"), tags: f.tags("tags"))
    }
}

extension PermissionInfo {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "permission")
        self.init(user: try f.string("user"), vhost: try f.string("vhost"), configure: try f.string("configure"),
                  write: try f.string("write"), read: try f.string("read"))
    }
}

extension ExchangeInfo {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "exchange")
        self.init(vhost: f.optionalString("vhost") ?? "", name: try f.string("name"),
                  type: f.optionalString("type") ?? "direct", durable: f.bool("durable", default: false),
                  autoDelete: f.bool("auto_delete", default: false), internal: f.bool("internal", default: false),
                  arguments: f.object("arguments"))
    }
}

extension QueueInfo {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "queue")
        let arguments = f.object("arguments")
        self.init(vhost: f.optionalString("vhost") ?? "", name: try f.string("name"),
                  durable: f.bool("durable", default: false), autoDelete: f.bool("auto_delete", default: false),
                  arguments: arguments,
                  type: f.optionalString("type") ?? arguments["x-queue-type"]?.stringValue ?? "classic",
                  messages: f.int("messages"), state: f.optionalString("state"),
                  exclusive: f.bool("exclusive", default: false))
    }
}

extension BindingInfo {
    init(json: JSONValue) throws(ManagementError) {
        let f = try JSONFields(json, what: "binding")
        self.init(vhost: f.optionalString("vhost") ?? "", source: try f.string("source"),
                  destination: try f.string("destination"),
                  destinationType: f.optionalString("destination_type") ?? "queue",
                  routingKey: f.optionalString("routing_key") ?? "",
                  propertiesKey: try f.string("properties_key"), arguments: f.object("arguments"))
    }
}
