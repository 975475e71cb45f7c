// The Swift client generated from openapi.yaml (module WarrenClient), driven through a whole
// round trip against a real Warren: what a portal written in Swift does. Run by
// Tests/integration/test_generated_swift_client.py, which starts Warren and the broker, passes
// their addresses in the environment and checks on the broker what this program reports.
//
// Every answer is taken through the generated output enums: a documented status the client
// cannot decode fails here, and so does an answer of another status than the step expects.
// The refusals (409, 404) are read as the typed cases the document declares, not as errors.
//
// Environment:
//   WARREN_URL                 Warren's base URL
//   WARREN_TOKEN_FILE          a file holding a team's token
//   WARREN_OSB_USER            a platform's user for /v2
//   WARREN_OSB_PASSWORD_FILE   a file holding its password
//   WARREN_NAMES               three unused environment names: the simple and full creates,
//                              and one never made (the 404)
//   WARREN_OSB_INSTANCE, WARREN_OSB_BINDING   the ids of the /v2 instance and binding
//   WARREN_CLIENT_CREATE_ONLY  instead of all that: create this environment, report its
//                              credentials and keep it (the test then sends a message with them)
//
// Output: one JSON object per line for each step that issued credentials (the test logs in
// with them), then "round trip: N steps passed". Exit status 1 at the first failing step.

import Foundation
import OpenAPIRuntime
import WarrenClient

struct RoundTripFailure: Error, CustomStringConvertible {
    let description: String
}

func fail(_ step: String, _ what: Any) -> RoundTripFailure {
    RoundTripFailure(description: "\(step): \(String(describing: what).prefix(3000))")
}

func expect(_ condition: Bool, _ step: String, _ what: @autoclosure () -> String) throws {
    if !condition { throw fail(step, what()) }
}

func setting(_ name: String) throws -> String {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
        throw RoundTripFailure(description: "\(name) is not set")
    }
    return value
}

func fileSetting(_ name: String) throws -> String {
    let path = try setting(name)
    return try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Credentials the test checks with a real AMQP client.
func report(_ step: String, username: String, password: String, vhost: String, queue: String) throws {
    let line: [String: String] = ["step": step, "username": username, "password": password, "vhost": vhost, "queue": queue]
    let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

@main
struct ClientRoundTrip {
    static func main() async {
        do {
            let steps = try await run()
            print("round trip: \(steps) steps passed")
        } catch {
            FileHandle.standardError.write(Data("round trip failed: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run() async throws -> Int {
        let url = try URL(string: setting("WARREN_URL")).unwrap("WARREN_URL is not a URL")
        let transport = try CurlClientTransport()
        let team = Client(serverURL: url, transport: transport,
                          middlewares: [BearerTokenMiddleware(token: try fileSetting("WARREN_TOKEN_FILE"))])
        if let name = ProcessInfo.processInfo.environment["WARREN_CLIENT_CREATE_ONLY"] {
            return try await createOnly(team, name)
        }
        let names = try setting("WARREN_NAMES").split(separator: " ").map(String.init)
        guard names.count == 3 else { throw RoundTripFailure(description: "WARREN_NAMES needs three names") }
        let platform = Client(serverURL: url, transport: transport,
                              middlewares: [BasicAuthenticationMiddleware(
                                  username: try setting("WARREN_OSB_USER"), password: try fileSetting("WARREN_OSB_PASSWORD_FILE"))])
        var steps = 0

        // health
        guard case .ok(let health) = try await team.getHealth() else { throw fail("health", "not 200") }
        _ = try health.body.json
        steps += 1

        // create, simple form
        let simple = names[0]
        let created = try await team.createEnvironment(body: .json(.init(name: simple)))
        guard case .created(let simpleCreated) = created else { throw fail("create simple", created) }
        let simpleBody = try simpleCreated.body.json
        try expect(simpleBody.status == .ready && simpleBody.name == simple, "create simple", "\(simpleBody)")
        try expect(simpleCreated.headers.Location == "/v1/environments/\(simple)", "create simple", simpleCreated.headers.Location)
        try report("create-simple", username: simpleBody.credentials.username, password: simpleBody.credentials.password,
                   vhost: simpleBody.vhost, queue: simpleBody.queue.name)
        steps += 1

        // create, full form: dead-lettering, a delivery limit, bindings, roles, limits
        let full = names[1]
        let fullRequest = Components.Schemas.CreateEnvironmentRequest(
            name: full,
            exchange: .init(_type: .topic),
            queues: [
                .init(name: "jobs", delivery_limit: 5, dead_letter: true),
                .init(name: "results", _type: .classic, max_priority: 5),
            ],
            bindings: [
                .init(queue: "jobs", routing_key: "jobs.*"),
                .init(queue: "results", routing_key: "results.#"),
            ],
            limits: .init(max_connections: 10),
            roles: [.producer, .consumer])
        let fullOutput = try await team.createEnvironment(body: .json(fullRequest))
        guard case .created(let fullCreated) = fullOutput else { throw fail("create full", fullOutput) }
        let fullBody = try fullCreated.body.json
        let queueNames = (fullBody.queues ?? []).map(\.name)
        try expect(queueNames == ["jobs", "results"], "create full", "queues \(queueNames)")
        let jobs = fullBody.queues?.first { $0.name == "jobs" }
        try expect(jobs?.delivery_limit == 5 && jobs?.dead_letter_queue == "jobs.dlq", "create full", "\(String(describing: jobs))")
        let results = fullBody.queues?.first { $0.name == "results" }
        try expect(results?._type == .classic && results?.max_priority == 5, "create full", "\(String(describing: results))")
        try expect((fullBody.bindings ?? []).contains { $0.queue == "jobs" && $0.routing_key == "jobs.*" }, "create full",
                   "bindings \(String(describing: fullBody.bindings))")
        let roles = Set(fullBody.role_credentials?.additionalProperties.keys.map { $0 } ?? [])
        try expect(roles == ["producer", "consumer"], "create full", "role credentials \(roles)")
        try expect(fullBody.limits?.max_connections == 10, "create full", "limits \(String(describing: fullBody.limits))")
        try report("create-full", username: fullBody.credentials.username, password: fullBody.credentials.password,
                   vhost: fullBody.vhost, queue: "jobs")
        steps += 1

        // get, list
        let got = try await team.getEnvironment(path: .init(id: full))
        guard case .ok(let gotOk) = got else { throw fail("get", got) }
        let environment = try gotOk.body.json
        try expect(environment.name == full && environment.status == .ready && environment.missing.isEmpty, "get", "\(environment)")
        let listed = try await team.listEnvironments()
        guard case .ok(let listOk) = listed else { throw fail("list", listed) }
        let listedNames = Set(try listOk.body.json.items.map(\.name))
        try expect(listedNames.isSuperset(of: [simple, full]), "list", "\(listedNames)")
        steps += 2

        // patch: a queue and its binding more
        let change = Components.Schemas.EnvironmentChange(
            queues: [.init(name: "extra", _type: .quorum)],
            bindings: [.init(queue: "extra", routing_key: "extra.*")])
        let patched = try await team.updateEnvironment(path: .init(id: full), body: .json(change))
        guard case .ok(let patchedOk) = patched else { throw fail("patch", patched) }
        let afterPatch = try patchedOk.body.json
        try expect((afterPatch.queues ?? []).contains { $0.name == "extra" }, "patch", "queues \(String(describing: afterPatch.queues))")
        steps += 1

        // rotation: a new set of credentials, the old one kept
        let rotated = try await team.issueCredentials(path: .init(id: full), body: .json(.init(role: "full")))
        guard case .created(let rotatedCreated) = rotated else { throw fail("rotate", rotated) }
        let issued = try rotatedCreated.body.json
        try expect(issued.credentials.username != fullBody.credentials.username
                   && issued.credentials.password != fullBody.credentials.password, "rotate", "same credentials")
        try report("rotate", username: issued.credentials.username, password: issued.credentials.password,
                   vhost: issued.connection.vhost, queue: "extra")
        steps += 1

        // 409: the same name, another spec; 404: a name nobody made
        let conflicting = try await team.createEnvironment(body: .json(.init(name: simple, exchange: .init(_type: .fanout))))
        guard case .conflict(let conflict) = conflicting else { throw fail("409", conflicting) }
        let conflictProblem = try conflict.body.application_problem_plus_json
        try expect(conflictProblem.status == 409 && conflictProblem._type == "urn:warren:problem:conflict", "409", "\(conflictProblem)")
        try expect((conflictProblem.errors ?? []).contains { $0.field == "exchange.type" }, "409", "\(conflictProblem)")
        let missing = try await team.getEnvironment(path: .init(id: names[2]))
        guard case .notFound(let notFound) = missing else { throw fail("404", missing) }
        let notFoundProblem = try notFound.body.application_problem_plus_json
        try expect(notFoundProblem.status == 404 && notFoundProblem._type == "urn:warren:problem:not-found", "404", "\(notFoundProblem)")
        steps += 2

        // blueprints
        let blueprints = try await team.listBlueprints()
        guard case .ok(let blueprintsOk) = blueprints else { throw fail("blueprints", blueprints) }
        let blueprintList = try blueprintsOk.body.json.items
        try expect(!blueprintList.isEmpty && blueprintList.allSatisfy { !$0.queues.isEmpty }, "blueprints", "\(blueprintList)")
        steps += 1

        // delete, then 404
        for name in [simple, full] {
            let deleted = try await team.deleteEnvironment(path: .init(id: name))
            guard case .noContent = deleted else { throw fail("delete \(name)", deleted) }
            let gone = try await team.getEnvironment(path: .init(id: name))
            guard case .notFound = gone else { throw fail("get after delete \(name)", gone) }
        }
        steps += 1

        // /v2: catalog, provision, bind, unbind, deprovision
        let version = "2.17"
        let catalog = try await platform.osbCatalog(headers: .init(X_hyphen_Broker_hyphen_API_hyphen_Version: version))
        guard case .ok(let catalogOk) = catalog else { throw fail("catalog", catalog) }
        let services = try catalogOk.body.json.services
        let serviceID = Components.Schemas.OSBServiceId.allCases[0]
        guard let service = services.first(where: { $0.id == serviceID }), let plan = service.plans.first else {
            throw fail("catalog", services)
        }
        steps += 1

        let instance = try setting("WARREN_OSB_INSTANCE")
        let provisioned = try await platform.osbProvision(
            path: .init(instance_id: instance),
            headers: .init(X_hyphen_Broker_hyphen_API_hyphen_Version: version),
            body: .json(.init(service_id: serviceID, plan_id: plan.id, organization_guid: "org", space_guid: "space")))
        guard case .created = provisioned else { throw fail("provision", provisioned) }
        steps += 1

        let binding = try setting("WARREN_OSB_BINDING")
        let bound = try await platform.osbBind(
            path: .init(instance_id: instance, binding_id: binding),
            headers: .init(X_hyphen_Broker_hyphen_API_hyphen_Version: version),
            body: .json(.init(service_id: serviceID, plan_id: plan.id)))
        guard case .created(let boundCreated) = bound else { throw fail("bind", bound) }
        let credentials = try boundCreated.body.json.credentials
        try report("bind", username: credentials.username, password: credentials.password,
                   vhost: credentials.vhost, queue: credentials.queues.first ?? "")
        steps += 1

        let unbound = try await platform.osbUnbind(
            path: .init(instance_id: instance, binding_id: binding),
            query: .init(service_id: serviceID, plan_id: plan.id),
            headers: .init(X_hyphen_Broker_hyphen_API_hyphen_Version: version))
        guard case .ok = unbound else { throw fail("unbind", unbound) }
        steps += 1

        let deprovisioned = try await platform.osbDeprovision(
            path: .init(instance_id: instance),
            query: .init(service_id: serviceID, plan_id: plan.id),
            headers: .init(X_hyphen_Broker_hyphen_API_hyphen_Version: version))
        guard case .ok = deprovisioned else { throw fail("deprovision", deprovisioned) }
        steps += 1
        return steps
    }

    static func createOnly(_ team: Client, _ name: String) async throws -> Int {
        let created = try await team.createEnvironment(body: .json(.init(name: name)))
        guard case .created(let createdOk) = created else { throw fail("create", created) }
        let body = try createdOk.body.json
        try report("create", username: body.credentials.username, password: body.credentials.password,
                   vhost: body.vhost, queue: body.queue.name)
        return 1
    }
}

extension Optional {
    func unwrap(_ message: String) throws -> Wrapped {
        guard let self else { throw RoundTripFailure(description: message) }
        return self
    }
}
