/// An AMQP topic pattern ("jobs.*.gpu", "results.#") as the regex RabbitMQ's topic permissions
/// take: the broker matches a publish's routing key against a regex, not against a pattern, so
/// Warren writes the pattern's meaning out. Words are separated by "."; `*` is exactly one word,
/// `#` zero or more.
enum TopicPattern {
    /// At most this many `#` words in one pattern. The broker runs the regex on every publish;
    /// each `#` is a loop that can backtrack over the key's words, so k of them cost up to
    /// words^k steps. Two keep that at 65,536 for a 255-byte key; more would let one tenant's
    /// pattern spend the broker's CPU that every team shares. (Consecutive `#`s count as one:
    /// "#.#" means "#".)
    static let maxMultiWordWildcards = 2

    /// Why `pattern` is not one an agent may have, or nil.
    static func problem(_ pattern: String) -> String? {
        if pattern.isEmpty { return "must not be empty" }
        if let reason = NameRules.checkRoutingKey(pattern) { return reason }
        let words = self.words(pattern)
        if words.contains(where: { $0 != "*" && $0 != "#" && ($0.contains("*") || $0.contains("#")) }) {
            return "'*' and '#' must each be a whole word, between dots"
        }
        if words.filter({ $0 == "#" }).count > maxMultiWordWildcards {
            return "may have at most \(maxMultiWordWildcards) '#' words"
        }
        return nil
    }

    /// One anchored regex matching the keys any of `patterns` matches.
    static func regex(anyOf patterns: [String]) -> String {
        "^(?:" + patterns.map { body(words($0)[...], afterWord: false) }.joined(separator: "|") + ")$"
    }

    /// The words, with runs of `#` made one.
    private static func words(_ pattern: String) -> [String] {
        var words: [String] = []
        for word in pattern.split(separator: ".", omittingEmptySubsequences: false).map(String.init) where !(word == "#" && words.last == "#") {
            words.append(word)
        }
        return words
    }

    /// The regex of `words`; `afterWord` when a word came before them, so the next word
    /// begins with its separating dot.
    private static func body(_ words: ArraySlice<String>, afterWord: Bool) -> String {
        guard let word = words.first else { return "" }
        let dot = afterWord ? "\\." : ""
        let rest = words.dropFirst()
        switch word {
        case "*":
            return dot + "[^.]*" + body(rest, afterWord: true)
        case "#":
            // Zero words (what follows comes as if `#` were not there), or one or more.
            return "(?:" + body(rest, afterWord: afterWord) + "|" + dot + "[^.]*(?:\\.[^.]*)*" + body(rest, afterWord: true) + ")"
        default:
            return dot + Role.escaped(word) + body(rest, afterWord: true)
        }
    }
}
