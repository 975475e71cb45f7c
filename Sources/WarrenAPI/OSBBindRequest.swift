import EnvironmentModel
import HTTPServer
import WireFormat

/// A bind body. `service_id` and `plan_id` are required, but for a rotation (a body with
/// `predecessor_binding_id`), which v2.17 lets a platform send with the predecessor's id
/// alone: the new binding then belongs to the predecessor's instance and plan anyway.
/// Parameters: `role` only. What the body alone decides is checked here; the plan against the
/// instance's, and the predecessor against the broker, are the handler's.
struct OSBBindRequest {
    /// The plan the platform names, when it names one.
    var planID: String?
    var role: Role?
    var predecessor: String?

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
        for key in parameters.keys.sorted() where key != "role" { problems.append("parameters.\(key) is not a known parameter (only role)") }
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
