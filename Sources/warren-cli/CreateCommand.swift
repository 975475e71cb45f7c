import ArgumentParser
import Foundation
import WarrenClient

struct CreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create an environment: a vhost, an exchange, a queue, a binding and a user.",
        discussion: """
            The options describe the single-queue form; leave them out and every value defaults \
            from the name (a direct exchange and a quorum queue named after it, bound by the name). \
            For several queues, bindings or binding arguments, write the whole body (the API's \
            CreateEnvironmentRequest) in a file and give --file; NAME then fills in or overrides \
            its "name". The file is checked against the schema before anything is sent.

            The answer holds the password, and it is the only one that does: Warren keeps no \
            copy. Creating a name that exists with the same spec issues a fresh, additional set \
            of credentials; with another spec it is refused (exit status 4). --protected is part \
            of the spec: a repeated create must say it as the environment stands.

            Examples:
              warren-cli create orders
              warren-cli create ledger --protected
              warren-cli create jobs --dead-letter --delivery-limit 5 --role consumer
              warren-cli create batch --file batch.json
              warren-cli create nightly --async --json > nightly.json
              warren-cli create orders --role consumer --kubernetes-secret --namespace shop | kubectl apply -f -
            """)

    @Argument(help: "The environment's name: lowercase letters, digits and hyphens, 1-63 characters (optional with --file when the file names it).")
    var name: String?

    @Option(help: "The exchange's type.")
    var exchangeType: Components.Schemas.ExchangeType?

    @Option(help: "The queue's type (default quorum).")
    var queueType: Components.Schemas.QueueType?

    @Option(help: ArgumentHelp("The binding's routing key (default: the name).", valueName: "key"))
    var routingKey: String?

    @Flag(help: "Send rejected, expired and over-limit messages to a queue NAME.dlq.")
    var deadLetter = false

    @Option(help: ArgumentHelp("Deliveries of one message before it is dead-lettered or dropped (quorum queues).", valueName: "n"))
    var deliveryLimit: Int?

    @Option(help: ArgumentHelp("Message priorities from 0 to this (1-255).", valueName: "n"))
    var maxPriority: Int?

    @Option(help: ArgumentHelp("Make the topology an operator prepared (see warren-cli blueprints); takes no other topology option.", valueName: "name"))
    var blueprint: String?

    @Option(name: .customLong("role"), help: "Also issue credentials of this role (repeatable).")
    var roles: [Components.Schemas.AdditionalRole] = []

    @Flag(help: "Protect the environment from deletion: delete is refused until `warren-cli patch NAME --unprotect` (goes with --file and --blueprint too).")
    var protected = false

    @OptionGroup(title: "Limits")
    var limits: LimitOptions

    @Option(
        help: ArgumentHelp("A JSON file holding the whole create body ('-': standard input); no other topology option goes with it.", valueName: "path"),
        completion: .file())
    var file: String?

    @Flag(name: .customLong("async"), help: "Answer as soon as the request is accepted (Prefer: respond-async); the environment is made in the background and `warren-cli get NAME` shows when it is ready.")
    var respondAsync = false

    @OptionGroup(title: "Kubernetes") var kubernetes: KubernetesSecretOptions

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    private var hasQueueOptions: Bool {
        queueType != nil || deadLetter || deliveryLimit != nil || maxPriority != nil
    }

    private var hasTopologyOptions: Bool {
        exchangeType != nil || routingKey != nil || hasQueueOptions || !limits.isEmpty
    }

    func validate() throws {
        if file != nil {
            guard !hasTopologyOptions, blueprint == nil, roles.isEmpty else {
                throw ValidationError("--file holds the whole body: give either --file or the topology options (--exchange-type, --queue-type, --role, ...), not both.")
            }
        } else if name == nil {
            throw ValidationError("Missing the environment's NAME.")
        }
        if blueprint != nil, hasTopologyOptions {
            throw ValidationError("--blueprint is a whole topology: it takes no --exchange-type, --queue-type, --routing-key, queue or limit option (--role goes with it).")
        }
    }

    func run() async throws {
        let body = try requestBody()
        let client = try global.client()
        let output = try await client.createEnvironment(
            query: .init(secret: kubernetes.secret, secret_namespace: kubernetes.secretNamespace),
            headers: .init(Prefer: respondAsync ? "respond-async" : nil), body: .json(body))
        let created: Components.Schemas.EnvironmentCreated
        let headline: String
        switch output {
        case .created(let answer):
            created = try answer.body.json
            headline = "Created environment \(created.name)."
        case .accepted(let answer):
            created = try answer.body.json
            headline = "Accepted: environment \(created.name) is being made in the background; `warren-cli get \(created.name)` shows when it is ready."
        case .ok(let answer):
            created = try answer.body.json
            headline = "Environment \(created.name) already exists with this spec: its topology was checked and a fresh set of credentials issued (earlier ones still work)."
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the create with an answer this command cannot read")
        }
        if kubernetes.asked, !global.json {
            try KubernetesSecretOptions.print(created.kubernetes_secrets)
            return
        }
        if global.json {
            try Output.json(created)
            return
        }
        var lines = [headline, ""] + EnvironmentText(created).lines
        lines.append("")
        lines += EnvironmentText.credentialLines("credentials (\(created.credentials.role ?? "full"))", created.credentials)
        for (role, credentials) in (created.role_credentials?.additionalProperties ?? [:]).sorted(by: { $0.key < $1.key }) {
            lines += EnvironmentText.credentialLines("credentials (\(role))", credentials)
        }
        lines.append("")
        lines.append(Output.passwordNotice)
        Output.print(lines)
    }

    private func requestBody() throws -> Components.Schemas.CreateEnvironmentRequest {
        if let file {
            var body = try BodyFile.decode(Components.Schemas.CreateEnvironmentRequest.self, from: file, name: name)
            if protected { body.protected = true }
            return body
        }
        // validate() made sure of a name without --file.
        guard let name else { throw CLIFailure(.usage, "missing the environment's NAME") }
        let queue: Components.Schemas.QueueSpec? = hasQueueOptions
            ? .init(_type: queueType, delivery_limit: deliveryLimit, dead_letter: deadLetter ? true : nil, max_priority: maxPriority)
            : nil
        return .init(
            name: name,
            exchange: exchangeType.map { .init(_type: $0) },
            queue: queue,
            routing_key: routingKey,
            limits: limits.limits,
            blueprint: blueprint,
            roles: roles.isEmpty ? nil : roles,
            protected: protected ? true : nil)
    }
}
