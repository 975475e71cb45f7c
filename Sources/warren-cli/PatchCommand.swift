import ArgumentParser
import Foundation
import WarrenClient

struct PatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patch",
        abstract: "Add queues and bindings to an environment, change its limits, or protect it from deletion.",
        discussion: """
            Queues and bindings that exist are kept; those given are added. A new queue is bound \
            only by the --bind options given for it: --bind QUEUE=KEY binds it with the routing \
            key KEY, --bind QUEUE with the empty one. Limits given replace the old ones. For \
            queue settings (dead-lettering, delivery limits, TTLs, ...) write the change (the \
            API's EnvironmentChange) in a file and give --file; it is checked against the \
            schema before anything is sent.

            A queue name ending in :quorum or :classic is read as NAME:TYPE.

            --protect protects the environment from deletion (delete is then refused, exit \
            status 4); --unprotect lifts the protection. Either goes alone or with the other \
            options (or --file).

            Examples:
              warren-cli patch orders --queue audit:classic --bind audit=orders.#
              warren-cli patch orders --protect
              warren-cli patch orders --max-connections 50
              warren-cli patch orders --file change.json
            """)

    @Argument(help: "The environment's name.")
    var name: String

    @Option(name: .customLong("queue"), help: ArgumentHelp("Add a queue, of type quorum (the default) or classic (repeatable).", valueName: "name[:type]"))
    var queues: [QueueArgument] = []

    @Option(name: .customLong("bind"), help: ArgumentHelp("Bind a queue to the environment's exchange (repeatable).", valueName: "queue[=routing-key]"))
    var bindings: [BindingArgument] = []

    @OptionGroup(title: "Limits")
    var limits: LimitOptions

    @Flag(help: "Protect the environment from deletion.")
    var protect = false

    @Flag(help: "Lift the environment's protection from deletion.")
    var unprotect = false

    @Option(
        help: ArgumentHelp("A JSON file holding the whole change ('-': standard input); no --queue, --bind or limit goes with it.", valueName: "path"),
        completion: .file())
    var file: String?

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    private var hasOptions: Bool { !queues.isEmpty || !bindings.isEmpty || !limits.isEmpty }

    /// `protected` of the change: --protect, --unprotect, or neither.
    private var protection: Bool? { protect ? true : unprotect ? false : nil }

    func validate() throws {
        if protect, unprotect {
            throw ValidationError("Give --protect or --unprotect, not both.")
        }
        if file != nil, hasOptions {
            throw ValidationError("--file holds the whole change: give either --file or --queue, --bind and the limits, not both.")
        }
        if file == nil, !hasOptions, protection == nil {
            throw ValidationError("Nothing to change: give --queue, --bind, a limit, --protect, --unprotect, or --file.")
        }
    }

    func run() async throws {
        let change: Components.Schemas.EnvironmentChange
        if let file {
            var fromFile = try BodyFile.decode(Components.Schemas.EnvironmentChange.self, from: file)
            if let protection { fromFile.protected = protection }
            change = fromFile
        } else {
            change = .init(
                protected: protection,
                queues: queues.isEmpty ? nil : queues.map(\.spec),
                bindings: bindings.isEmpty ? nil : bindings.map(\.binding),
                limits: limits.limits)
        }
        let client = try global.client()
        let output = try await client.updateEnvironment(path: .init(id: name), body: .json(change))
        switch output {
        case .ok(let answer):
            let environment = try answer.body.json
            if global.json {
                try Output.json(environment)
            } else {
                Output.print(["Changed environment \(name).", ""] + EnvironmentText(environment).lines)
            }
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the change with an answer this command cannot read")
        }
    }
}
