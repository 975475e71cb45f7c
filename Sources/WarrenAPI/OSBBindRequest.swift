import EnvironmentModel
import HTTPServer
import WireFormat

/// A bind body. `service_id` and `plan_id` are required, but for a rotation (a body with
/// `predecessor_binding_id`), which v2.17 lets a platform send with the predecessor's id
/// alone: the new binding then belongs to the predecessor's instance and plan anyway.
/// Parameters: `role`, and `secret` (`kubernetes`) with an optional `secret_namespace` for the
/// credentials as a Kubernetes Secret too (OSB has no query parameters of its own for a bind,
/// and platforms pass a user's bind parameters through as they are: `cf bind-service -c`). What the body alone decides is checked here; the plan against the
/// instance's, and the predecessor against the broker, are the handler's.
struct OSBBindRequest {
    /// The plan the platform names, when it names one.
    var planID: String?
    var role: Role?
    var predecessor: String?
    /// Nil unless the parameters asked for a Kubernetes Secret.
    var secret: SecretRequest?

    static func decode(_ request: HTTPRequest, bindingID: String) throws(OSBError) -> OSBBindRequest {
        var body = try OSBBody(request)
        let rotation = body.object["predecessor_binding_id"] != nil
        body.serviceID(required: !rotation)
        let planID = body.string("plan_id", required: !rotation)
        let parameters = body.object("parameters") ?? [:]
        let predecessor = body.string("predecessor_binding_id", required: false)
        try body.finish()
        var made = OSBBindRequest(planID: planID, predecessor: predecessor)
        var problems: [String] = []
        let known: Set<String> = ["role", "secret", "secret_namespace"]
        for key in parameters.keys.sorted() where !known.contains(key) {
            problems.append("parameters.\(key) is not a known parameter (role, secret, secret_namespace)")
        }
        func text(_ key: String) -> String? {
            switch parameters[key] {
            case nil: return nil
            case .string(let value)?: return value
            default:
                problems.append("parameters.\(key) must be a string")
                return nil
            }
        }
        let kind = text("secret"), namespace = text("secret_namespace")
        do {
            made.secret = try SecretRequest.parse(kind: kind, namespace: namespace, prefix: "parameters.")
        } catch {
            problems += error.errors.map { "\($0.field) \($0.reason)" }
        }
        switch parameters["role"] {
        case nil: break
        case .string(let raw)? where Role(builtIn: raw) != nil: made.role = Role(builtIn: raw)
        default: problems.append("parameters.role must be one of \(Role.builtIn.map(\.name).joined(separator: ", "))")
        }
        if let predecessor {
            if !OSBNaming.isValidID(predecessor) {
                problems.append("predecessor_binding_id must be 1 to 255 bytes of UTF-8")
            }
            if OSBNaming.same(predecessor, bindingID) { problems.append("predecessor_binding_id must name another binding") }
        }
        guard problems.isEmpty else { throw OSBError.badRequest(problems.joined(separator: "; ")) }
        return made
    }
}
