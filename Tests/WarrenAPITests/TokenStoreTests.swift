import Crypto
import Testing
@testable import WarrenAPI

@Suite struct TokenStoreTests {
    static func digest(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test func parsesTeamsDigestsAndComments() throws {
        let text = """
            # operators' tokens
            team-a \(Self.digest("alpha"))   # trailing comment

            team-b\t\(Self.digest("beta").uppercased())
            """
        let entries = try TokenStore.parse(text, source: "tokens")
        #expect(entries.map(\.team) == ["team-a", "team-b"])
    }

    @Test(arguments: [
        "team-a", "team-a abc", "Team-A \(digest("x"))", "team.a \(digest("x"))",
        "team-a \(digest("x")) extra", "team-a \(String(repeating: "g", count: 64))",
    ])
    func refusesBadLines(line: String) {
        #expect(throws: TokenStore.LoadError.self) { try TokenStore.parse(line, source: "tokens") }
    }

    // Files saved on Windows: CRLF line endings, a UTF-8 BOM first, or both.
    static let bom = "\u{FEFF}"
    static func windowsText(_ lineEnd: String) -> String {
        ["# operators' tokens", "team-a \(digest("alpha"))   # trailing comment", "",
         "team-b\t\(digest("beta"))"].joined(separator: lineEnd) + lineEnd
    }

    @Test func acceptsCRLFLineEndings() throws {
        let entries = try TokenStore.parse(Self.windowsText("\r\n"), source: "tokens")
        #expect(entries.map(\.team) == ["team-a", "team-b"])
    }

    @Test func acceptsALeadingBOM() throws {
        let entries = try TokenStore.parse(Self.bom + Self.windowsText("\n"), source: "tokens")
        #expect(entries.map(\.team) == ["team-a", "team-b"])
        // The BOM is dropped, not kept in the first team's name, even on the first line.
        let first = try TokenStore.parse(Self.bom + "team-a \(Self.digest("alpha"))", source: "tokens")
        #expect(first.map(\.team) == ["team-a"])
    }

    @Test func acceptsABOMAndCRLFLineEndings() throws {
        let entries = try TokenStore.parse(Self.bom + Self.windowsText("\r\n"), source: "tokens")
        #expect(entries.map(\.team) == ["team-a", "team-b"])
    }

    /// The bytes as they are on disk (EF BB BF, then CRLF lines), through `TokenStore(path:)`.
    @Test func loadsAWindowsFileFromDisk() throws {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        let text = "team-a \(Self.digest("alpha"))\r\nteam-b \(Self.digest("beta"))\r\n"
        FileManagerLite.write(path, bytes: [0xEF, 0xBB, 0xBF] + Array(text.utf8))
        let store = try TokenStore(path: path)
        #expect(store.teamCount == 2)
        #expect(store.team(forAuthorization: "Bearer alpha") == "team-a")
        #expect(store.team(forAuthorization: "Bearer beta") == "team-b")
    }

    /// A bearer token with whitespace in it is refused before it is looked up, even when the
    /// tokens file lists exactly that text: ASCII and Unicode whitespace alike (the check takes a
    /// byte-wise path for printable ASCII and Unicode's property for anything else).
    @Test(arguments: ["alpha beta", "alpha\tbeta", "alpha\u{2003}beta", "alpha\u{A0}beta", "\u{2028}"])
    func tokensWithWhitespaceAreRefused(token: String) throws {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        FileManagerLite.write(path, bytes: Array("team-a \(Self.digest(token))\nteam-b \(Self.digest("plain"))\n".utf8))
        let store = try TokenStore(path: path)
        #expect(store.team(forAuthorization: "Bearer plain") == "team-b")
        #expect(store.team(forAuthorization: "Bearer \(token)") == nil)
        #expect(TokenStore.containsWhitespace(token))
        #expect(!TokenStore.containsWhitespace("alpha-\u{E9}t\u{E9}~beta"))
    }

    /// Malformed lines are still refused, whatever the line endings, with the right line number.
    @Test(arguments: [
        ("team-a \(digest("a"))\r\ngarbage\r\n", 2, "expected 'TEAM SHA256HEX'"),
        ("\(bom)# c\r\n\r\nteam-a \(digest("a"))\r\nteam-b abc\r\n", 4, "64 hex characters"),
        ("\(bom)team-a\r\n", 1, "expected 'TEAM SHA256HEX'"),
        ("\(bom)Team-A \(digest("a"))\n", 1, "team name"),
        ("team-a \(digest("a")) extra\r\n", 1, "expected 'TEAM SHA256HEX'"),
        // A BOM is taken only at the very start of the file; anywhere else it is not a team name.
        ("team-a \(digest("a"))\r\n\(bom)team-b \(digest("b"))\r\n", 2, "team name"),
        ("\(bom)\(bom)team-a \(digest("a"))\r\n", 1, "team name"),
    ])
    func refusesMalformedLinesWithTheirNumber(text: String, line: Int, reason: String) {
        do {
            _ = try TokenStore.parse(text, source: "tokens")
            Issue.record("accepted \(text.debugDescription)")
        } catch let error as TokenStore.LoadError {
            #expect(error.description.hasPrefix("tokens:\(line): "), "\(error.description)")
            #expect(error.description.contains(reason), "\(error.description)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func findsTheTeamOfABearerToken() throws {
        let path = "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))"
        let text = "team-a \(Self.digest("alpha"))\nteam-b \(Self.digest("beta"))\n"
        FileManagerLite.write(path, text)
        let store = try TokenStore(path: path)
        #expect(store.team(forAuthorization: "Bearer alpha") == "team-a")
        #expect(store.team(forAuthorization: "bearer beta") == "team-b")
        #expect(store.team(forAuthorization: "Bearer gamma") == nil)
        #expect(store.team(forAuthorization: "Basic alpha") == nil)
        #expect(store.team(forAuthorization: "Bearer") == nil)
        #expect(store.team(forAuthorization: nil) == nil)

        // Reload swaps the table; a broken file keeps the old one.
        FileManagerLite.write(path, "team-c \(Self.digest("alpha"))\n")
        try store.reload()
        #expect(store.team(forAuthorization: "Bearer alpha") == "team-c")
        FileManagerLite.write(path, "garbage\n")
        #expect(throws: TokenStore.LoadError.self) { try store.reload() }
        #expect(store.team(forAuthorization: "Bearer alpha") == "team-c")
    }

    static func temporaryPath() -> String { "/tmp/warren-tokens-\(UInt32.random(in: 0 ... .max))" }

    /// One team's token acting as another's: the second line with a digest is refused, and the
    /// message names both lines, whichever teams they give and however far apart they are.
    @Test(arguments: [
        ("team-a \(digest("alpha"))\nteam-b \(digest("alpha"))\n", 2, 1),
        ("# header\nteam-a \(digest("alpha"))\n\nteam-b \(digest("beta"))\nteam-c \(digest("alpha").uppercased())\n", 5, 2),
        ("team-a \(digest("alpha"))\r\nteam-a \(digest("alpha"))\r\n", 2, 1),
    ])
    func refusesADigestGivenOnTwoLines(text: String, line: Int, first: Int) {
        do {
            let entries = try TokenStore.parse(text, source: "tokens")
            Issue.record("accepted \(entries.map(\.team)) from \(text.debugDescription)")
        } catch let error as TokenStore.LoadError {
            #expect(error.description == "tokens:\(line): this digest is already given on line \(first)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    /// A truncated file (a config tool about to write it) would have every team refused 401.
    @Test(arguments: ["", "\n\n", "# all teams are below\n", "\u{FEFF}# only a comment\r\n\r\n", "   \t\n# x\n"])
    func refusesAFileThatGivesNoTeam(text: String) {
        let path = Self.temporaryPath()
        FileManagerLite.write(path, text)
        do {
            _ = try TokenStore(path: path)
            Issue.record("accepted \(text.debugDescription)")
        } catch let error as TokenStore.LoadError {
            #expect(error.givesNoTeam)
            #expect(error.description.hasPrefix("\(path): gives no team"), "\(error.description)")
        } catch {
            Issue.record("unexpected \(error)")
        }
        // Allowed on purpose, the same file is a table without teams.
        #expect((try? TokenStore(path: path, allowsNoTeams: true))?.teamCount == 0)
    }

    /// Errors other than "no team" do not say "no team" (the start-up hint depends on it).
    @Test func onlyAnEmptyFileGivesNoTeam() {
        let path = Self.temporaryPath()
        FileManagerLite.write(path, "garbage\n")
        do {
            _ = try TokenStore(path: path)
            Issue.record("accepted garbage")
        } catch let error as TokenStore.LoadError {
            #expect(!error.givesNoTeam)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    /// A reload that would leave no team, or that gives a digest twice, keeps every team served.
    @Test(arguments: ["", "# being rewritten\n", "team-a \(digest("alpha"))\nteam-c \(digest("alpha"))\n"])
    func aRefusedReloadKeepsTheOldTable(text: String) throws {
        let path = Self.temporaryPath()
        FileManagerLite.write(path, "team-a \(Self.digest("alpha"))\nteam-b \(Self.digest("beta"))\n")
        let store = try TokenStore(path: path)
        FileManagerLite.write(path, text)
        #expect(throws: TokenStore.LoadError.self) { try store.reload() }
        #expect(store.teamCount == 2)
        #expect(store.team(forAuthorization: "Bearer alpha") == "team-a")
        #expect(store.team(forAuthorization: "Bearer beta") == "team-b")

        // The next good file is taken: a new team's token works, a removed team's does not.
        FileManagerLite.write(path, "team-c \(Self.digest("gamma"))\n")
        try store.reload()
        #expect(store.team(forAuthorization: "Bearer gamma") == "team-c")
        #expect(store.team(forAuthorization: "Bearer alpha") == nil)
    }

    /// Allowed on purpose, a reload to a file without teams takes effect: every token is revoked.
    @Test func aReloadWithoutTeamsIsTakenWhenAllowed() throws {
        let path = Self.temporaryPath()
        FileManagerLite.write(path, "team-a \(Self.digest("alpha"))\n")
        let store = try TokenStore(path: path, allowsNoTeams: true)
        FileManagerLite.write(path, "# every token revoked\n")
        try store.reload()
        #expect(store.teamCount == 0)
        #expect(store.team(forAuthorization: "Bearer alpha") == nil)
    }
}

import Foundation

enum FileManagerLite {
    static func write(_ path: String, _ text: String) {
        write(path, bytes: Array(text.utf8))
    }

    static func write(_ path: String, bytes: [UInt8]) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }
}
