import FoundationEssentials
import Glibc
import Testing
@testable import warren

/// Warren's settings from environment variables: defaults, the one-line refusals that name the
/// variable, and the rules between settings.
@Suite struct ConfigurationTests {
    /// A file holding `text`, removed when the suite's value goes away.
    final class TempFile {
        let path: String
        init(_ text: String) {
            path = "/tmp/warren-config-test-\(UInt64.random(in: .min ... .max))"
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        }
        deinit { unlink(path) }
    }

    let tokens = TempFile("team-a \(String(repeating: "ab", count: 32))\n")

    func parse(_ env: [String: String]) throws(Configuration.Invalid) -> Configuration {
        try Configuration.fromEnvironment(["WARREN_TOKENS_FILE": tokens.path].merging(env) { _, new in new })
    }

    func refusal(_ env: [String: String]) -> Configuration.Invalid? {
        do {
            _ = try parse(env)
            return nil
        } catch {
            return error
        }
    }

    @Test func defaultsNeedOnlyTheTokensFile() throws {
        let config = try parse([:])
        #expect(config.listenHost == "127.0.0.1" && config.listenPort == 8080)
        #expect(config.managementURLs == ["http://127.0.0.1:15672"])
        #expect(config.longestCallMilliseconds == 10_000)
        #expect(!config.allowNoTeams && !config.osbAllowUnverifiedSeals && config.osbPreviousSecret == nil)
        #expect(refusal(["WARREN_TOKENS_FILE": ""])?.variable == "WARREN_TOKENS_FILE")
    }

    @Test func eachBadValueNamesItsVariable() {
        let cases: [(String, String)] = [
            ("WARREN_LISTEN", "localhost:8080"),
            ("WARREN_LISTEN", "127.0.0.1:70000"),
            ("WARREN_MANAGEMENT_URL", "ftp://broker"),
            ("WARREN_MANAGEMENT_TIMEOUT_MS", "99"),
            ("WARREN_AMQP_HOST", "user@host"),
            ("WARREN_LOG_LEVEL", "verbose"),
            ("WARREN_ALLOW_NO_TEAMS", "yes"),
            ("WARREN_BLUEPRINTS_FILE", "/nonexistent/blueprints.json"),
        ]
        for (variable, value) in cases {
            #expect(refusal([variable: value])?.variable == variable, "\(variable)=\(value)")
        }
        // A user other than guest needs its password.
        #expect(refusal(["WARREN_MANAGEMENT_USER": "warren"])?.variable == "WARREN_MANAGEMENT_PASSWORD_FILE")
    }

    @Test func managementURLsAreTrimmedAndTheLongestCallCountsEachNode() throws {
        let config = try parse([
            "WARREN_MANAGEMENT_URL": " http://a:15672/ , https://b:15671 ,", "WARREN_MANAGEMENT_TIMEOUT_MS": "1500",
        ])
        #expect(config.managementURLs == ["http://a:15672", "https://b:15671"])
        #expect(config.longestCallMilliseconds == 3_000)
    }

    @Test func theOSBSecretsFollowTheirRules() throws {
        let platforms = TempFile("cf team-a \(String(repeating: "cd", count: 32))\n")
        let secret = TempFile(String(repeating: "s", count: 32) + "\n")
        let short = TempFile("too short")
        let same = TempFile(String(repeating: "s", count: 32))
        let old = TempFile(String(repeating: "o", count: 40))
        #expect(refusal(["WARREN_OSB_PLATFORMS_FILE": platforms.path])?.variable == "WARREN_OSB_SECRET_FILE")
        #expect(refusal(["WARREN_OSB_PLATFORMS_FILE": platforms.path, "WARREN_OSB_SECRET_FILE": short.path])?.variable == "WARREN_OSB_SECRET_FILE")
        // A rotation needs two different secrets: the same one twice is a mistake.
        #expect(refusal([
            "WARREN_OSB_PLATFORMS_FILE": platforms.path, "WARREN_OSB_SECRET_FILE": secret.path, "WARREN_OSB_PREVIOUS_SECRET_FILE": same.path,
        ])?.variable == "WARREN_OSB_PREVIOUS_SECRET_FILE")
        #expect(refusal([
            "WARREN_OSB_PLATFORMS_FILE": platforms.path, "WARREN_OSB_SECRET_FILE": secret.path, "WARREN_OSB_ALLOW_UNVERIFIED_SEALS": "true",
        ])?.variable == "WARREN_OSB_ALLOW_UNVERIFIED_SEALS")
        let config = try parse([
            "WARREN_OSB_PLATFORMS_FILE": platforms.path, "WARREN_OSB_SECRET_FILE": secret.path,
            "WARREN_OSB_PREVIOUS_SECRET_FILE": old.path, "WARREN_OSB_ALLOW_UNVERIFIED_SEALS": "1",
        ])
        #expect(config.osbSecret == Array(String(repeating: "s", count: 32).utf8), "the final newline is not part of the secret")
        #expect(config.osbPreviousSecret == Array(String(repeating: "o", count: 40).utf8))
        #expect(config.osbAllowUnverifiedSeals)
    }
}
