import ArgumentParser
import Foundation
import WarrenClient

/// The options every command takes: where Warren is, how to output, and (through the
/// environment or a file only) the team's token.
///
/// There is deliberately no `--token`: a token on the command line lands in shell history and
/// in every process listing (`ps`, /proc/PID/cmdline) on the machine.
struct GlobalOptions: ParsableArguments {
    static let defaultURL = "http://127.0.0.1:8080"
    /// Longer than a create may take on Warren's side (WARREN_CREATE_DEADLINE_SECONDS, 60 s by
    /// default), so that a slow create is answered rather than abandoned half-way through; a
    /// person in a hurry has Ctrl-C. Connecting still gives up after the transport's 5 s.
    static let requestTimeout: Duration = .seconds(120)

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Warren's base URL (default: $WARREN_URL, else \(GlobalOptions.defaultURL)).",
            valueName: "url"))
    var url: String?

    @Option(
        name: .customLong("token-file"),
        help: ArgumentHelp(
            "A file holding the team's token (default: $WARREN_TOKEN_FILE; or put the token itself in $WARREN_TOKEN).",
            valueName: "path"),
        completion: .file())
    var tokenFile: String?

    @Flag(name: .long, help: "Print Warren's answer as JSON (indented, keys sorted) instead of text, for scripts.")
    var json = false

    /// The client every command talks through: the bearer token on each request, and every
    /// problem document turned into a thrown `WarrenProblem`.
    func client() throws -> Client {
        let serverURL = try baseURL()
        let token = try self.token()
        var configuration = CurlClientTransport.Configuration()
        configuration.timeout = Self.requestTimeout
        let transport: CurlClientTransport
        do {
            transport = try CurlClientTransport(configuration: configuration)
        } catch {
            throw CLIFailure(.unexpected, "libcurl could not be started: \(error)")
        }
        return Client(
            serverURL: serverURL, transport: transport,
            middlewares: [BearerTokenMiddleware(token: token), ProblemMiddleware()])
    }

    func baseURL() throws -> URL {
        let environment = ProcessInfo.processInfo.environment
        let given = url ?? environment["WARREN_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultURL
        let source = url != nil ? "--url" : "WARREN_URL"
        let shape = "\(source) must be http://HOST[:PORT] or https://HOST[:PORT], optionally with a path prefix"
        guard let parsed = URL(string: given), let scheme = parsed.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = parsed.host, !host.isEmpty
        else { throw CLIFailure(.usage, shape) }
        // Not echoed: a URL with credentials in it is exactly the one not to print.
        guard parsed.user == nil, parsed.password == nil else {
            throw CLIFailure(.usage, "\(source) must not hold credentials; the token goes in WARREN_TOKEN or a token file")
        }
        guard parsed.query == nil, parsed.fragment == nil else { throw CLIFailure(.usage, shape) }
        return parsed
    }

    /// The token, from `--token-file`, else `WARREN_TOKEN` or `WARREN_TOKEN_FILE` (not both).
    func token() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        func nonEmpty(_ name: String) -> String? {
            environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        if let tokenFile {
            return try Self.token(fromFile: tokenFile, source: "--token-file")
        }
        switch (nonEmpty("WARREN_TOKEN"), nonEmpty("WARREN_TOKEN_FILE")) {
        case (.some, .some):
            throw CLIFailure(.usage, "both WARREN_TOKEN and WARREN_TOKEN_FILE are set; unset one of them (or give --token-file)")
        case (.some(let token), nil):
            return try Self.checked(token, source: "WARREN_TOKEN")
        case (nil, .some(let path)):
            return try Self.token(fromFile: path, source: "WARREN_TOKEN_FILE")
        case (nil, nil):
            throw CLIFailure(.usage, """
                no token given. Give the team's token one of these ways:
                  export WARREN_TOKEN=...              (the token itself)
                  export WARREN_TOKEN_FILE=PATH        (a file holding it)
                  warren-cli ... --token-file PATH
                There is no --token option: a token on the command line lands in shell history and in ps.
                """)
        }
    }

    private static func token(fromFile path: String, source: String) throws -> String {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CLIFailure(.usage, "the token file \(path) (\(source)) cannot be read: \(error.localizedDescription)")
        }
        return try checked(text, source: "the token file \(path)")
    }

    /// One word of visible ASCII, as an Authorization header carries it; a trailing newline is
    /// allowed. Never echoed, not even in part.
    private static func checked(_ raw: String, source: String) throws -> String {
        let token = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw CLIFailure(.usage, "\(source) is empty; it must hold the team's token") }
        guard token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw CLIFailure(.usage, "\(source) must hold the token alone: one line of visible ASCII characters, no spaces")
        }
        return token
    }
}
