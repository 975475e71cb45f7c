import Testing
@testable import WarrenAPI

/// The platforms file's refusals: a digest on two lines, and a file that gives no platform, at
/// start-up and on reload (where the old table stays in force).
@Suite struct PlatformStoreTests {
    static func digest(_ credentials: String) -> String { TokenStoreTests.digest(credentials) }
    static func temporaryPath() -> String { "/tmp/warren-platforms-\(UInt32.random(in: 0 ... .max))" }
    static let good = "cf-a team-a \(digest("cc:one"))\nk8s team-b \(digest("sm:two"))\n"

    /// The same credentials on two lines, for the same team or another: refused, naming both.
    @Test(arguments: [
        ("cf-a team-a \(digest("cc:one"))\ncf-b team-b \(digest("cc:one"))\n", 2, 1),
        ("# platforms\n\ncf-a team-a \(digest("cc:one"))\nk8s team-b \(digest("sm:two"))\ncf-c team-a \(digest("sm:two").uppercased())\n", 5, 4),
        ("cf-a team-a \(digest("cc:one"))\r\ncf-a team-a \(digest("cc:one"))\r\n", 2, 1),
    ])
    func refusesADigestGivenOnTwoLines(text: String, line: Int, first: Int) {
        do {
            let entries = try PlatformStore.parse(text, source: "platforms")
            Issue.record("accepted \(entries.map(\.platform)) from \(text.debugDescription)")
        } catch let error as PlatformStore.LoadError {
            #expect(error.description == "platforms:\(line): this digest is already given on line \(first)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test(arguments: ["", "\n", "# PLATFORM TEAM SHA256HEX\n", "\u{FEFF}# none yet\r\n\r\n"])
    func refusesAFileThatGivesNoPlatform(text: String) {
        let path = Self.temporaryPath()
        FileManagerLite.write(path, text)
        do {
            _ = try PlatformStore(path: path)
            Issue.record("accepted \(text.debugDescription)")
        } catch let error as PlatformStore.LoadError {
            #expect(error.description.hasPrefix("\(path): gives no platform"), "\(error.description)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test(arguments: ["", "# being rewritten\n", "cf-a team-a \(digest("cc:one"))\ncf-b team-b \(digest("cc:one"))\n"])
    func aRefusedReloadKeepsTheOldTable(text: String) throws {
        let path = Self.temporaryPath()
        FileManagerLite.write(path, Self.good)
        let store = try PlatformStore(path: path)
        FileManagerLite.write(path, text)
        #expect(throws: PlatformStore.LoadError.self) { try store.reload() }
        #expect(store.platformCount == 2)
        #expect(store.platform(user: "cc", password: "one")?.platform == "cf-a")
        #expect(store.platform(user: "sm", password: "two")?.team == "team-b")

        // The next good file is taken: a new platform is let in, a removed one is not.
        FileManagerLite.write(path, "gcp team-c \(Self.digest("gc:three"))\n")
        try store.reload()
        #expect(store.platform(user: "gc", password: "three")?.team == "team-c")
        #expect(store.platform(user: "cc", password: "one") == nil)
    }
}
