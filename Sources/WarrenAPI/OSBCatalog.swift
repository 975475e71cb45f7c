import Crypto
import EnvironmentModel
import FoundationEssentials
import HTTPServer
import Provisioning

/// GET /v2/catalog: one service, `rabbitmq-environment`, with a plan for the default topology
/// and one per blueprint. Ids are name-based UUIDs (version 5, SHA-1 over a fixed namespace and
/// the name), so every Warren, and every restart, offers the same ids for the same names: a
/// platform's records of its instances stay valid.
struct OSBCatalog: Sendable {
    enum Topology: Sendable, Equatable {
        case standard
        case blueprint(String)
    }

    struct Plan: Sendable {
        var id: String
        var name: String
        var description: String
        var topology: Topology

        /// The tier an instance of this plan gets: its blueprint's, when it has ceilings of its own.
        func tier(of provisioner: Provisioner) -> String? {
            guard case .blueprint(let blueprint) = topology else { return nil }
            return provisioner.tier(ofBlueprint: blueprint)
        }
    }

    static let serviceName = "rabbitmq-environment"
    static let serviceID = NameBasedUUID.make("service:\(serviceName)")

    let plans: [Plan]
    /// Encoded once: the catalog changes only with the blueprints, read at start-up.
    let body: [UInt8]

    init(blueprints: Blueprints) {
        var plans = [Plan(
            id: NameBasedUUID.make("plan:default"), name: "default",
            description: "One durable exchange and one durable queue bound to it (the /v1 default topology)",
            topology: .standard)]
        for blueprint in blueprints.all {
            // A blueprint called "default" keeps its own plan under another name.
            let name = blueprint.name == "default" ? "blueprint-default" : blueprint.name
            plans.append(Plan(
                id: NameBasedUUID.make("plan:blueprint:\(blueprint.name)"), name: name,
                description: blueprint.description.isEmpty ? "The \(blueprint.name) blueprint" : blueprint.description,
                topology: .blueprint(blueprint.name)))
        }
        self.plans = plans
        self.body = Self.encode(plans)
    }

    func plan(id: String) -> Plan? {
        plans.first { $0.id == id }
    }

    func response() -> HTTPResponse {
        HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "application/json")]), body: body)
    }

    private static func encode(_ plans: [Plan]) -> [UInt8] {
        struct PlanBody: Encodable {
            var id, name, description: String
            var free = true
            var bindable = true
            // A plan change is taken where it only grows the instance in place (see
            // OSBInstanceHandlers.update); the rest are refused with 422.
            var planUpdateable = true
            var bindingRotatable = true
            var metadata: [String: String]
        }
        struct ServiceBody: Encodable {
            var id: String
            var name: String
            var description: String
            var bindable = true
            var instancesRetrievable = true
            var bindingsRetrievable = true
            var planUpdateable = true
            var allowContextUpdates = false
            var tags = ["rabbitmq", "amqp"]
            var metadata: [String: String]
            var plans: [PlanBody]
        }
        let service = ServiceBody(
            id: serviceID, name: serviceName,
            description: "An isolated RabbitMQ environment: a virtual host with its exchange, queues and bindings; each binding is a user of its own",
            metadata: ["displayName": "RabbitMQ environment (Warren)"],
            plans: plans.map { PlanBody(id: $0.id, name: $0.name, description: $0.description, metadata: ["displayName": $0.name]) })
        return JSON.encode(["services": [service]])
    }
}

/// RFC 9562 version 5 UUIDs in a namespace of Warren's own.
enum NameBasedUUID {
    /// A fixed, random namespace: Warren's ids never equal another broker's for the same name.
    static let namespace: [UInt8] = [
        0x5d, 0x0e, 0x8a, 0x43, 0x2b, 0x6f, 0x4c, 0x1e, 0x9a, 0x71, 0x0c, 0x3b, 0x52, 0xe4, 0x19, 0xa7,
    ]

    static func make(_ name: String) -> String {
        var bytes = Array(Insecure.SHA1.hash(data: namespace + Array(("warren:osb:" + name).utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        let hex = Hex.string(bytes)
        let cuts = [8, 12, 16, 20]
        var out = ""
        for (index, character) in hex.enumerated() {
            if cuts.contains(index) { out.append("-") }
            out.append(character)
        }
        return out
    }
}
