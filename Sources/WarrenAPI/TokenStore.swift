import Crypto
import FoundationEssentials
import Provisioning
import Synchronization

/// The bearer tokens Warren accepts and the team each belongs to, read from WARREN_TOKENS_FILE:
/// one `TEAM SHA256HEX` pair a line (LF or CRLF, an optional UTF-8 BOM first), `#` starts a
/// comment. Only digests are kept, so the file never holds a usable token. `reload()` swaps
/// the whole table at once (for SIGHUP).
public final class TokenStore: Sendable {
    struct Entry: Sendable {
        var team: String
        var digest: [UInt8]
    }

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    private let path: String
    private let entries: Mutex<[Entry]>

    public init(path: String) throws {
        self.path = path
        self.entries = Mutex(try TokenStore.load(path))
    }

    /// Reads the file again; on any error the current table stays in force.
    public func reload() throws {
        let fresh = try TokenStore.load(path)
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
        guard !token.isEmpty, !token.contains(where: \.isWhitespace) else { return nil }
        return team(forToken: token)
    }

    static func load(_ path: String) throws -> [Entry] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw LoadError(description: "cannot read \(path)")
        }
        return try parse(String(decoding: data, as: UTF8.self), source: path)
    }

    static func parse(_ text: String, source: String) throws -> [Entry] {
        // Editors on Windows save a UTF-8 BOM first and end lines with CRLF. The BOM would
        // otherwise become part of the first team name. "\r\n" is a single Character in Swift,
        // so splitting on "\n" alone would see a CRLF file as one long line.
        var text = Substring(text)
        if text.unicodeScalars.first == "\u{FEFF}" {
            text = Substring(text.unicodeScalars.dropFirst())
        }
        var entries: [Entry] = []
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.isEmpty { continue }
            let at = "\(source):\(index + 1)"
            guard words.count == 2 else {
                throw LoadError(description: "\(at): expected 'TEAM SHA256HEX'")
            }
            let team = String(words[0])
            if let reason = NameRules.checkTeamName(team) {
                throw LoadError(description: "\(at): team name \(reason)")
            }
            guard let digest = hexBytes(words[1]), digest.count == 32 else {
                throw LoadError(description: "\(at): the digest must be 64 hex characters (SHA-256 of the token)")
            }
            entries.append(Entry(team: team, digest: digest))
        }
        return entries
    }

    private static func hexBytes(_ text: Substring) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }
}
