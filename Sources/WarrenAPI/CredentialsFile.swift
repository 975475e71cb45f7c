import FoundationEssentials

/// The line format the tokens file and the platforms file share: whitespace-separated words a
/// line, `#` to the end of a line is a comment, blank lines are skipped. Editors on Windows save
/// a UTF-8 BOM first and end lines with CRLF: the BOM would otherwise become part of the first
/// name, and "\r\n" is a single Character in Swift, so splitting on "\n" alone would see a CRLF
/// file as one long line.
enum CredentialsFile {
    /// The file's text, or nil when it cannot be read.
    static func read(_ path: String) -> String? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The words of each line that has any, with where the line is ("{source}:{line number}").
    static func lines(_ text: String, source: String) -> [(at: String, words: [Substring])] {
        var text = Substring(text)
        if text.unicodeScalars.first == "\u{FEFF}" {
            text = Substring(text.unicodeScalars.dropFirst())
        }
        var result: [(at: String, words: [Substring])] = []
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if !words.isEmpty { result.append(("\(source):\(index + 1)", words)) }
        }
        return result
    }
}
