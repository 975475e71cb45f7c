import Crypto
import EnvironmentModel
import HTTPServer
import WireFormat

/// How a platform's instance id becomes an environment name, without a database: `osb-{id}`
/// when that is a valid name (a lowercase GUID is), else `osb-` and 32 hex digits of the id's
/// SHA-256. Two ids can be made to map to one name (a platform may choose an id that is the
/// hash of another), and a /v1 environment may hold the name already: so the name only says
/// where to look, and the record's platform instance must name this very id and platform
/// before anything is done to it.
enum OSBNaming {
    static let prefix = "osb-"

    static func environmentName(instanceID: String) -> String {
        let direct = prefix + instanceID
        if NameRules.checkEnvironmentName(direct) == nil { return direct }
        return prefix + Hex.string(SHA256.hash(data: Array(instanceID.utf8)).prefix(16))
    }

    /// Instance and binding ids: the specification restricts neither their characters nor
    /// their length, and a platform percent-encodes whatever it uses (the router decodes each
    /// path segment on its own, so an encoded "/" stays inside its id, and a segment that is
    /// not UTF-8 matches no route). An id only says where to look (see `environmentName`,
    /// `BindingIdentity`, which hash it where it is not a name already), so any id the record
    /// can hold is taken: 1 to 255 bytes of UTF-8. Control characters too: log lines and error
    /// bodies are JSON, which escapes them, and in the seal's and binding passwords' messages
    /// the id is the last field, so a NUL in it cannot shift the fields before it.
    static func checkID(_ id: String?, what: String) throws(OSBError) -> String {
        guard let id, isValidID(id) else {
            throw OSBError.badRequest("the \(what) must be 1 to 255 bytes of UTF-8")
        }
        return id
    }

    static func isValidID(_ id: String) -> Bool {
        (1...255).contains(id.utf8.count)
    }

    /// Whether two ids are the same id: byte for byte, as they are hashed (Swift's `==` would
    /// take two spellings of one accented letter for one id).
    static func same(_ a: String, _ b: String) -> Bool {
        a.utf8.elementsEqual(b.utf8)
    }
}

/// The query parameters /v2 reads.
enum OSBQuery {
    static func value(_ name: String, in query: String?) -> String? {
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.first.map(String.init) == name else { continue }
            return parts.count == 2 ? Router.percentDecode(parts[1].replacing("+", with: " ")) ?? "" : ""
        }
        return nil
    }

    /// `accepts_incomplete=true|false` (absent: false).
    static func acceptsIncomplete(_ query: String?) throws(OSBError) -> Bool {
        switch value("accepts_incomplete", in: query) {
        case nil, "false"?: return false
        case "true"?: return true
        default: throw OSBError.badRequest("accepts_incomplete must be true or false")
        }
    }

    /// The hints a last_operation may carry (`service_id`, `plan_id`, `operation`): unused, but
    /// the specification has them non-empty when present, so an empty one is a malformed request.
    static func checkHints(_ query: String?) throws(OSBError) {
        let empty = ["service_id", "plan_id", "operation"].filter { value($0, in: query)?.isEmpty == true }
        guard empty.isEmpty else { throw OSBError.badRequest(empty.map { "\($0) must not be empty when given" }.joined(separator: "; ")) }
    }

    /// The `service_id` and `plan_id` a DELETE must carry (the specification says MUST).
    static func requireServiceAndPlan(_ query: String?) throws(OSBError) {
        guard let service = value("service_id", in: query), !service.isEmpty else {
            throw OSBError.badRequest("service_id is a required query parameter")
        }
        guard service == OSBCatalog.serviceID else { throw OSBError.badRequest("service_id is not this broker's service") }
        guard let plan = value("plan_id", in: query), !plan.isEmpty else {
            throw OSBError.badRequest("plan_id is a required query parameter")
        }
    }
}

/// The fields every /v2 body shares, read leniently where the specification says unknown
/// fields are to be ignored, strictly where Warren acts on them.
struct OSBBody {
    var object: [String: JSONValue]
    var errors: [String] = []

    init(_ request: HTTPRequest) throws(OSBError) {
        do {
            object = try JSONBody.object(request.body)
        } catch {
            throw OSBError.badRequest(error.detail)
        }
    }

    mutating func string(_ key: String, required: Bool) -> String? {
        switch object[key] {
        case .string(let value) where !value.isEmpty: return value
        case nil where !required: return nil
        case nil: errors.append("\(key) is required")
        default: errors.append("\(key) must be a non-empty string")
        }
        return nil
    }

    mutating func object(_ key: String) -> [String: JSONValue]? {
        switch object[key] {
        case .object(let value): return value
        case nil: return nil
        default: errors.append("\(key) must be an object"); return nil
        }
    }

    /// The service id, which must be Warren's one service (when given, where it is optional).
    mutating func serviceID(required: Bool = true) {
        if let service = string("service_id", required: required), service != OSBCatalog.serviceID {
            errors.append("service_id is not this broker's service (see GET /v2/catalog)")
        }
    }

    func finish() throws(OSBError) {
        guard errors.isEmpty else { throw OSBError.badRequest(errors.joined(separator: "; ")) }
    }
}

/// A provision body: the plan, the platform's context, and `parameters`, which are the fields
/// of a /v1 create body but `name` (the instance id gives it), `blueprint` (the plan does) and
/// `roles` (credentials come from bindings only). Validated by /v1's own decoder.
struct OSBProvisionRequest {
    var plan: OSBCatalog.Plan
    var spec: EnvironmentSpec
    var context: String?

    static let contextLimit = 4096

    static func decode(
        _ request: HTTPRequest, name: String, catalog: OSBCatalog, blueprints: Blueprints, ceilings: Ceilings = Ceilings(),
        tiers: [String: Ceilings] = [:]
    ) throws(OSBError) -> OSBProvisionRequest {
        var body = try OSBBody(request)
        body.serviceID()
        let planID = body.string("plan_id", required: true)
        // Deprecated for `context` but still required in v2.17: checked, never used.
        _ = body.string("organization_guid", required: true)
        _ = body.string("space_guid", required: true)
        let parameters = body.object("parameters") ?? [:]
        let context = body.object("context")
        try body.finish()
        guard let plan = planID.flatMap(catalog.plan(id:)) else {
            throw OSBError.badRequest("plan_id is not one of this broker's plans (see GET /v2/catalog)")
        }
        var contextText: String?
        if let context {
            contextText = String(decoding: (try? JSONValue.object(context).encodedBytes()) ?? [], as: UTF8.self)
            guard (contextText?.utf8.count ?? 0) <= contextLimit else {
                throw OSBError.badRequest("context must encode to at most \(contextLimit) bytes")
            }
        }
        return OSBProvisionRequest(
            plan: plan, spec: try spec(plan: plan, parameters: parameters, name: name, blueprints: blueprints, ceilings: ceilings, tiers: tiers),
            context: contextText)
    }

    /// The environment spec of `plan` with `parameters`, through CreateEnvironmentRequest.
    static func spec(
        plan: OSBCatalog.Plan, parameters: [String: JSONValue], name: String, blueprints: Blueprints, ceilings: Ceilings = Ceilings(),
        tiers: [String: Ceilings] = [:]
    ) throws(OSBError) -> EnvironmentSpec {
        var refused: [String] = []
        let notTaken = [
            "name": "the instance id names the environment", "blueprint": "the plan chooses the blueprint",
            "roles": "credentials come from bindings", "agents": "credentials come from bindings",
        ]
        for (key, why) in notTaken.sorted(by: { $0.key < $1.key }) where parameters[key] != nil {
            refused.append("parameters.\(key) is not taken here (\(why))")
        }
        if parameters["protected"] != nil { refused.append(OSBProtection.refusal) }
        var body = parameters
        body["name"] = .string(name)
        if case .blueprint(let blueprint) = plan.topology {
            let mixed = CreateEnvironmentRequest.topologyKeys.filter { parameters[$0] != nil }
            if !mixed.isEmpty {
                refused.append("parameters \(mixed.joined(separator: ", ")) cannot be given with plan \(plan.name): a blueprint's topology is fixed")
            }
            body["blueprint"] = .string(blueprint)
        }
        guard refused.isEmpty else { throw OSBError.badRequest(refused.joined(separator: "; ")) }
        let bytes = (try? JSONValue.object(body).encodedBytes()) ?? []
        do {
            return try CreateEnvironmentRequest.decode(bytes, blueprints: blueprints, ceilings: ceilings, tiers: tiers).spec
        } catch {
            let fields = error.errors.map { "parameters.\($0.field) \($0.reason)" }
            throw OSBError.badRequest("invalid parameters: " + (fields.isEmpty ? error.detail : fields.joined(separator: "; ")))
        }
    }
}
