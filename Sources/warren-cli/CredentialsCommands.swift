import ArgumentParser
import Foundation
import WarrenClient

struct CredentialsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials",
        abstract: "Rotate or revoke an environment's credentials.",
        discussion: """
            Rotation is two steps, so that no client is cut off: issue a new set, move the \
            clients over, then revoke the old users (or have Warren revoke them after a delay).

            Examples:
              warren-cli credentials rotate orders --revoke-others-after 3600
              warren-cli credentials revoke orders warren.team-a.orders.5d1c09aa3f9a2c1e
            """,
        subcommands: [RotateCommand.self, RevokeCommand.self])
}

struct RotateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Issue a new set of credentials; the existing ones keep working.",
        discussion: """
            Makes a new user of the role given (full by default) and prints its password, the \
            only time it is shown. With --revoke-others-after SECONDS, the role's other users \
            are revoked that much later (0: now); otherwise revoke them with `warren-cli \
            credentials revoke` once the clients have moved over (`warren-cli get NAME` lists \
            the users).

            Examples:
              warren-cli credentials rotate orders
              warren-cli credentials rotate orders --role consumer --revoke-others-after 0
              warren-cli credentials rotate orders --kubernetes-secret | kubectl apply -f -
            """)

    @Argument(help: "The environment's name.")
    var name: String

    @Option(help: "The new user's role: full (the default), producer, consumer, or one of the environment's agents by name.")
    var role: Components.Schemas.Role?

    @Option(
        name: .customLong("revoke-others-after"),
        help: ArgumentHelp("Revoke the role's other users this many seconds later (0-604800; 0: now).", valueName: "seconds"))
    var revokeOthersAfter: Int?

    @OptionGroup(title: "Kubernetes") var kubernetes: KubernetesSecretOptions

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    func run() async throws {
        let client = try global.client()
        // The body may be left out; it is only sent when it says something.
        let request: Components.Schemas.CredentialsRequest? = role == nil && revokeOthersAfter == nil
            ? nil
            : .init(role: role, revoke_others_after_seconds: revokeOthersAfter)
        let output = try await client.issueCredentials(
            path: .init(id: name), query: .init(secret: kubernetes.secret, secret_namespace: kubernetes.secretNamespace),
            body: request.map { .json($0) })
        switch output {
        case .created(let answer):
            let issued = try answer.body.json
            if kubernetes.asked, !global.json {
                try KubernetesSecretOptions.print(issued.kubernetes_secrets)
                return
            }
            if global.json {
                try Output.json(issued)
                return
            }
            var lines = ["Issued new credentials for environment \(name).", ""]
            lines += EnvironmentText.credentialLines(
                "credentials (\(issued.credentials.role ?? role ?? "full"))", issued.credentials)
            let revocations = issued.revocations.additionalProperties.sorted { $0.key < $1.key }
            if !revocations.isEmpty {
                lines.append("")
                lines.append("to be revoked:")
                lines += Output.table(
                    ["USERNAME", "AT"], revocations.map { [$0.key, Output.timestamp($0.value)] }, indent: "  ")
            }
            lines.append("")
            lines += EnvironmentText.connectionLines(issued.connection)
            lines.append("")
            lines.append(Output.passwordNotice)
            Output.print(lines)
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the rotation with an answer this command cannot read")
        }
    }
}

struct RevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke one set of credentials now.",
        discussion: """
            Deletes the user: new logins with it are refused. `warren-cli get NAME` lists an \
            environment's users and their roles. Prints nothing with --json: the answer has no \
            body.

            Example:
              warren-cli credentials revoke orders warren.team-a.orders.5d1c09aa3f9a2c1e
            """)

    @Argument(help: "The environment's name.")
    var name: String

    @Argument(help: "The user to revoke, as `warren-cli get NAME` lists it.")
    var username: String

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    func run() async throws {
        let client = try global.client()
        let output = try await client.revokeCredentials(path: .init(id: name, username: username))
        switch output {
        case .noContent:
            if !global.json { Output.print("Revoked \(username).") }
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the revocation with an answer this command cannot read")
        }
    }
}
