import Foundation
import WarrenClient

/// Text for people (aligned key/value lines and tables) and JSON for scripts.
enum Output {
    /// The answer as JSON: indented, keys sorted so that the same answer prints the same text,
    /// dates as RFC 3339 as Warren sends them. The value is the generated client's decoding of
    /// the answer, whose decoders refuse a key the schema does not name, so nothing is lost.
    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    /// `key:  value` lines, the values aligned.
    static func fields(_ pairs: [(String, String)], indent: String = "") -> [String] {
        let width = pairs.map { $0.0.count }.max() ?? 0
        return pairs.map { key, value in
            indent + (key + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0) + "  " + value
        }
    }

    /// A table: a header row in capitals and the rows, each column as wide as its widest cell,
    /// two spaces between columns.
    static func table(_ header: [String], _ rows: [[String]], indent: String = "") -> [String] {
        var widths = header.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() where column < widths.count {
                widths[column] = max(widths[column], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            let padded = cells.enumerated().map { column, cell in
                column == cells.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            var text = indent + padded.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        return [line(header)] + rows.map(line)
    }

    static func print(_ lines: [String]) {
        Swift.print(lines.joined(separator: "\n"))
    }

    static func print(_ value: String) {
        Swift.print(value)
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    /// An AMQP URI without its user information: the human output shows the password once, on a
    /// line of its own, and the URI (which Warren sends with the credentials in a create or a
    /// rotation's answer) without them. `--json` has the URI as Warren sent it.
    static func withoutCredentials(_ uri: String) -> String {
        guard let schemeEnd = uri.range(of: "://") else { return uri }
        let rest = uri[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return uri }
        return String(uri[..<schemeEnd.upperBound]) + String(rest[rest.index(after: at)...])
    }

    static let passwordNotice =
        "Warren keeps no copy of a password: it is shown only in this answer and will not be shown again."
}
