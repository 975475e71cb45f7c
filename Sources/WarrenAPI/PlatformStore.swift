import Crypto
import EnvironmentModel
import FoundationEssentials
import Locking

/// The platforms (Open Service Broker clients, a Cloud Foundry cloud controller say) that may
/// call /v2, read from WARREN_OSB_PLATFORMS_FILE: one `PLATFORM TEAM SHA256HEX` line each, the
/// digest being the hex SHA-256 of `user:password`, the platform's HTTP basic credentials. The
/// instances a platform provisions belong to TEAM. The same rules as the tokens file: `#`
/// starts a comment, LF or CRLF, an optional UTF-8 BOM first; only digests are kept.
/// `reload()` swaps the whole table at once (for SIGHUP). A file that gives no platform is
/// refused, at start-up and on reload: without /v2, WARREN_OSB_PLATFORMS_FILE is not set.
public final class PlatformStore: Sendable {
    public struct Entry: Sendable, Equatable {
        public var platform: String
        public var team: String
        var digest: [UInt8]
    }

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    private let path: String
    private let entries: PThreadMutex<[Entry]>

    public init(path: String) throws {
        self.path = path
        self.entries = PThreadMutex(try PlatformStore.load(path))
    }

    init(entries: [Entry]) {
        self.path = ""
        self.entries = PThreadMutex(entries)
    }

    public func reload() throws {
        let fresh = try PlatformStore.load(path)
        entries.withLock { $0 = fresh }
    }

    public var platformCount: Int {
        entries.withLock { Set($0.map(\.platform)).count }
    }

    /// The teams the platforms provision for.
    public var teams: Set<String> {
        entries.withLock { Set($0.map(\.team)) }
    }

    /// Whether a line of the file names this platform.
    public func knows(platform: String) -> Bool {
        entries.withLock { $0.contains { $0.platform == platform } }
    }

    /// The platform and team whose credentials these are, or nil. Every entry is compared, in
    /// constant time, so timing says nothing about which came close.
    public func platform(user: String, password: String) -> (platform: String, team: String)? {
        let digest = Array(SHA256.hash(data: Array("\(user):\(password)".utf8)))
        var found: (platform: String, team: String)?
        for entry in entries.withLock({ $0 }) {
            var difference: UInt8 = 0
            for (a, b) in zip(digest, entry.digest) { difference |= a ^ b }
            if difference == 0 && found == nil { found = (entry.platform, entry.team) }
        }
        return found
    }

    /// The platform for an `Authorization: Basic ...` header value, or nil.
    public func platform(forAuthorization header: String?) -> (platform: String, team: String)? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let decoded = Data(base64Encoded: String(parts[1]).trimmingSpaces),
              let text = String(data: decoded, encoding: .utf8),
              let colon = text.firstIndex(of: ":")
        else { return nil }
        return platform(user: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
    }

    static func load(_ path: String) throws -> [Entry] {
        guard let text = CredentialsFile.read(path) else { throw LoadError(description: "cannot read \(path)") }
        let entries = try parse(text, source: path)
        // A truncated file (a config tool about to write it) would refuse every platform.
        guard !entries.isEmpty else {
            throw LoadError(description: "\(path): gives no platform (no 'PLATFORM TEAM SHA256HEX' line): every platform would be refused")
        }
        return entries
    }

    static func parse(_ text: String, source: String) throws -> [Entry] {
        var entries: [Entry] = []
        var digests = CredentialsFile.DigestLines()
        for line in CredentialsFile.lines(text, source: source) {
            let (at, words) = (line.at, line.words)
            guard words.count == 3 else {
                throw LoadError(description: "\(at): expected 'PLATFORM TEAM SHA256HEX'")
            }
            let platform = String(words[0]), team = String(words[1])
            // The platform's name is written into records; the team's into vhost names.
            if let reason = NameRules.checkTeamName(platform) {
                throw LoadError(description: "\(at): platform name \(reason)")
            }
            if let reason = NameRules.checkTeamName(team) {
                throw LoadError(description: "\(at): team name \(reason)")
            }
            guard let digest = Hex.bytes(words[2]), digest.count == 32 else {
                throw LoadError(description: "\(at): the digest must be 64 hex characters (SHA-256 of user:password)")
            }
            if let duplicate = digests.claim(digest, on: line) { throw LoadError(description: duplicate) }
            entries.append(Entry(platform: platform, team: team, digest: digest))
        }
        return entries
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
