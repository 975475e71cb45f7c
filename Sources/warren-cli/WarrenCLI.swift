import ArgumentParser
import Foundation

/// The root command: nothing of its own but the commands and the help that explains them all.
struct WarrenCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warren-cli",
        abstract: "Provision and manage isolated RabbitMQ environments with Warren (its /v1 API).",
        discussion: """
            Warren's URL is --url, else $WARREN_URL, else \(GlobalOptions.defaultURL). The \
            team's token is read from the file --token-file names, else from $WARREN_TOKEN \
            (the token itself) or the file $WARREN_TOKEN_FILE names. There is no --token \
            option: a token on the command line lands in shell history and in ps.

            Every command prints text for people, or Warren's answer as JSON with --json. \
            Errors go to standard error as `error: TITLE (STATUS): DETAIL`, then a line per \
            field Warren named. A password is printed only by create and credentials rotate, \
            the only answers that hold one.

            Exit status (docs/cli.md has the details):
            \(exitStatusTable)

            Example:
              export WARREN_URL=http://127.0.0.1:8080 WARREN_TOKEN_FILE=~/.warren-token
              warren-cli create orders
              warren-cli get orders --json
            """,
        subcommands: [
            CreateCommand.self, GetCommand.self, ListCommand.self, PatchCommand.self, DeleteCommand.self,
            CredentialsCommand.self, QueuesCommand.self, KedaCommand.self, BlueprintsCommand.self,
        ])

    static var exitStatusTable: String {
        ExitStatus.allCases.map { "  \($0.rawValue)  \($0.meaning)" }.joined(separator: "\n")
    }
}

/// The entry point: ArgumentParser's own `main`, but with the exit statuses of ExitStatus. Its
/// default for a usage error is 64 (EX_USAGE); here every usage error, whether ArgumentParser
/// or a command found it, is 2. Every other failure is printed as one `error:` message, never
/// as a stack or a `ClientError` (whose description holds the request's headers, the token
/// among them).
@main
enum Main {
    static func main() async {
        var command: any ParsableCommand
        do {
            command = try await WarrenCLI.asyncParseAsRoot()
        } catch {
            // --help (exit 0), a missing or invalid argument, a validate() refusal.
            if WarrenCLI.exitCode(for: error) == .validationFailure {
                fail(.usage, usageMessage(error), prefixed: false)
            }
            WarrenCLI.exit(withError: error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            guard CLIFailure.isExplained(error) else {
                // ArgumentParser's own: a ValidationError, a request for help (a command with
                // subcommands and no run of its own asks for it by throwing), an ExitCode.
                if WarrenCLI.exitCode(for: error) == .validationFailure {
                    fail(.usage, usageMessage(error), prefixed: false)
                }
                WarrenCLI.exit(withError: error)
            }
            let failure = CLIFailure.explaining(error)
            fail(failure.status, failure.message, prefixed: true)
        }
        exit(ExitStatus.success.rawValue)
    }

    /// ArgumentParser's message with its usage lines, its `Error:` made this tool's `error:`.
    static func usageMessage(_ error: any Error) -> String {
        let message = WarrenCLI.fullMessage(for: error)
        return message.hasPrefix("Error: ") ? "error: " + message.dropFirst("Error: ".count) : message
    }

    static func fail(_ status: ExitStatus, _ message: String, prefixed: Bool) -> Never {
        let text = (prefixed ? "error: " : "") + message
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
        exit(status.rawValue)
    }
}
