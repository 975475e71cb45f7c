import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The line format the tokens file and the platforms file share: whitespace-separated words a
/// line, `#` to the end of a line is a comment, blank lines are skipped. Editors on Windows save
/// a UTF-8 BOM first and end lines with CRLF: the BOM would otherwise become part of the first
/// name, and "\r\n" is a single Character in Swift, so splitting on "\n" alone would see a CRLF
/// file as one long line.
enum CredentialsFile {
    /// One line that has words: where it is, for messages, and its number, for naming it again.
    struct Line {
        var source: String
        var number: Int
        var words: [Substring]

        /// "{source}:{line number}", the prefix of every message about this line.
        var at: String { "\(source):\(number)" }
    }

    /// The file's text, or nil when it cannot be read. Read with plain POSIX calls:
    /// FoundationEssentials' `Data(contentsOf:)` leaks the 4 KiB buffer it allocates for an
    /// empty file (LeakSanitizer found it), and an empty file is exactly what a config tool
    /// that truncates before it writes leaves for a reload to find.
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The lines that have any words, in order.
    static func lines(_ text: String, source: String) -> [Line] {
        var text = Substring(text)
        if text.unicodeScalars.first == "\u{FEFF}" {
            text = Substring(text.unicodeScalars.dropFirst())
        }
        var result: [Line] = []
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if !words.isEmpty { result.append(Line(source: source, number: index + 1, words: words)) }
        }
        return result
    }

    /// The line each digest was first given on. Two lines with the same digest would make the
    /// answer depend on their order: one team's token (or one platform's credentials) would act
    /// as whichever line comes first, so a file that has one is refused whole.
    struct DigestLines {
        private var firstLine: [[UInt8]: Int] = [:]

        /// Records `digest` as given on `line`; the message to refuse the file with when an
        /// earlier line gave it already.
        mutating func claim(_ digest: [UInt8], on line: Line) -> String? {
            if let earlier = firstLine[digest] {
                return "\(line.at): this digest is already given on line \(earlier)"
            }
            firstLine[digest] = line.number
            return nil
        }
    }
}
