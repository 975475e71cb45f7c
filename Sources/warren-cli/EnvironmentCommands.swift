import ArgumentParser
import Foundation
import WarrenClient

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Show an environment, checked against the broker now.",
        discussion: """
            Shows the environment's status (ready, or degraded with what is missing), its queues \
            and bindings, its users and where clients connect. Never a password: only create \
            and credentials rotate show one.

            Examples:
              warren-cli get orders
              warren-cli get orders --json | jq -r .status
            """)

    @Argument(help: "The environment's name.")
    var name: String

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    func run() async throws {
        let client = try global.client()
        let output = try await client.getEnvironment(path: .init(id: name))
        switch output {
        case .ok(let answer):
            let environment = try answer.body.json
            if global.json {
                try Output.json(environment)
            } else {
                Output.print(EnvironmentText(environment).lines)
            }
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the request with an answer this command cannot read")
        }
    }
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the team's environments.",
        discussion: """
            One line per environment of the team the token belongs to, sorted by name.

            Examples:
              warren-cli list
              warren-cli list --json | jq -r '.items[].name'
            """)

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    func run() async throws {
        let client = try global.client()
        let output = try await client.listEnvironments()
        switch output {
        case .ok(let answer):
            let list = try answer.body.json
            if global.json {
                try Output.json(list)
            } else if list.items.isEmpty {
                Output.print("No environments.")
            } else {
                var lines = Output.table(
                    ["NAME", "STATUS", "VHOST", "CREATED"],
                    list.items.map { [$0.name, $0.status?.rawValue ?? "-", $0.vhost, Output.timestamp($0.created_at)] })
                // openapi.yaml lets the list carry a status; Warren's list leaves it out, since
                // only a GET checks an environment against the broker.
                if list.items.contains(where: { $0.status == nil }) {
                    lines += ["", "STATUS -: the list does not say; `warren-cli get NAME` checks an environment against the broker."]
                }
                Output.print(lines)
            }
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the request with an answer this command cannot read")
        }
    }
}

struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Tear an environment down: its vhost, everything in it, and every user.",
        discussion: """
            An environment whose queues hold messages is not deleted (exit status 4, \
            messages-pending) unless --force is given. A protected environment is never \
            deleted, --force or not (exit status 4, protected): `warren-cli patch NAME \
            --unprotect` lifts the protection first. With --async Warren answers once the \
            deletion is under way; `warren-cli get NAME` shows status deleting until it exits \
            with status 3 (not found). Prints nothing with --json: the answer has no body.

            Examples:
              warren-cli delete orders
              warren-cli delete orders --force --async
            """)

    @Argument(help: "The environment's name.")
    var name: String

    @Flag(help: "Delete even when the queues hold messages (or the environment's record cannot be trusted).")
    var force = false

    @Flag(name: .customLong("async"), help: "Answer once the deletion is under way (Prefer: respond-async).")
    var respondAsync = false

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    func run() async throws {
        let client = try global.client()
        let output: Operations.deleteEnvironment.Output
        do {
            output = try await client.deleteEnvironment(
                path: .init(id: name), query: .init(force: force ? true : nil),
                headers: .init(Prefer: respondAsync ? "respond-async" : nil))
        } catch let error where WarrenProblem.in(error)?.code == "protected" {
            // Warren's detail names the API call; say this tool's way out too.
            let problem = CLIFailure.explaining(error)
            throw CLIFailure(problem.status, problem.message + "\n  `warren-cli patch \(name) --unprotect` lifts the protection")
        }
        let message: String
        switch output {
        case .noContent:
            message = "Deleted environment \(name)."
        case .accepted:
            message = "Deleting environment \(name) in the background; `warren-cli get \(name)` shows status deleting until it is gone."
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the request with an answer this command cannot read")
        }
        if !global.json { Output.print(message) }
    }
}
