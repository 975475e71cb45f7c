import Crypto
import EnvironmentModel
import FoundationEssentials
import Locking

/// The bearer tokens Warren accepts and the team each belongs to, read from WARREN_TOKENS_FILE:
/// one `TEAM SHA256HEX` pair a line (LF or CRLF, an optional UTF-8 BOM first), `#` starts a
/// comment. Only digests are kept, so the file never holds a usable token. `reload()` swaps
/// the whole table at once (for SIGHUP). A file that gives no team is refused unless allowed:
/// a config tool that truncates the file before writing it would otherwise have every team
/// refused 401 until it is done.
public final class TokenStore: Sendable {
    struct Entry: Sendable {
        var team: String
        var digest: [UInt8]
    }

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
        /// The file is well formed but gives no team (only blank lines and comments).
        public var givesNoTeam = false
    }

    private let path: String
    private let allowsNoTeams: Bool
    private let entries: PThreadMutex<[Entry]>

    /// `allowsNoTeams`: the operator means to serve without any team (every token refused), so
    /// a file that gives none is taken, at start-up and on reload.
    public init(path: String, allowsNoTeams: Bool = false) throws {
        self.path = path
        self.allowsNoTeams = allowsNoTeams
        self.entries = PThreadMutex(try TokenStore.load(path, allowsNoTeams: allowsNoTeams))
    }

    /// Reads the file again; on any error (a file that gives no team is one, unless allowed)
    /// the current table stays in force.
    public func reload() throws {
        let fresh = try TokenStore.load(path, allowsNoTeams: allowsNoTeams)
        entries.withLock { $0 = fresh }
    }

    public var teamCount: Int {
        entries.withLock { Set($0.map(\.team)).count }
    }

    /// The team whose token this is, or nil. Compares the digest with every entry in constant
    /// time and never stops early, so timing says nothing about which entry came close.
    public func team(forToken token: String) -> String? {
        let digest = Array(SHA256.hash(data: Array(token.utf8)))
        var found: String?
        for entry in entries.withLock({ $0 }) {
            var difference: UInt8 = 0
            for (a, b) in zip(digest, entry.digest) { difference |= a ^ b }
            if difference == 0 && found == nil { found = entry.team }
        }
        return found
    }

    /// The team for an `Authorization` header value, or nil.
    public func team(forAuthorization header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = String(parts[1])
        guard !token.isEmpty, !Self.containsWhitespace(token) else { return nil }
        return team(forToken: token)
    }

    /// Printable ASCII (what tokens are) is checked byte by byte; only other text goes through
    /// Unicode's whitespace property, which per Character cost a tenth of the server's CPU on an
    /// authenticated route (BENCHMARKS.md).
    static func containsWhitespace(_ token: String) -> Bool {
        if token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) { return false }
        return token.contains(where: \.isWhitespace)
    }

    static func load(_ path: String, allowsNoTeams: Bool) throws -> [Entry] {
        guard let text = CredentialsFile.read(path) else { throw LoadError(description: "cannot read \(path)") }
        let entries = try parse(text, source: path)
        guard !entries.isEmpty || allowsNoTeams else {
            throw LoadError(description: "\(path): gives no team (no 'TEAM SHA256HEX' line): every token would be refused", givesNoTeam: true)
        }
        return entries
    }

    static func parse(_ text: String, source: String) throws -> [Entry] {
        var entries: [Entry] = []
        var digests = CredentialsFile.DigestLines()
        for line in CredentialsFile.lines(text, source: source) {
            let (at, words) = (line.at, line.words)
            guard words.count == 2 else {
                throw LoadError(description: "\(at): expected 'TEAM SHA256HEX'")
            }
            let team = String(words[0])
            if let reason = NameRules.checkTeamName(team) {
                throw LoadError(description: "\(at): team name \(reason)")
            }
            guard let digest = Hex.bytes(words[1]), digest.count == 32 else {
                throw LoadError(description: "\(at): the digest must be 64 hex characters (SHA-256 of the token)")
            }
            if let duplicate = digests.claim(digest, on: line) { throw LoadError(description: duplicate) }
            entries.append(Entry(team: team, digest: digest))
        }
        return entries
    }
}
