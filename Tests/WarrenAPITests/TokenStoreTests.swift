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
}

import Foundation

enum FileManagerLite {
    static func write(_ path: String, _ text: String) {
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }
}
