import HTTPServer

/// The query parameters of a route that takes several: `name=value` pairs split on `&`, each
/// side percent-decoded, `+` read as a space (as HTML forms and most HTTP clients send a space;
/// a `+` itself travels as `%2B`, which every client of the spec sends). Only the names the
/// route knows are read; others are ignored, as everywhere in the API. A known name given
/// twice, or a value that is not valid percent-encoded UTF-8, is a 400 naming the parameter:
/// which of two values was meant is not Warren's to guess.
struct QueryParameters {
    private var values: [String: String] = [:]

    init(_ query: String?, known: Set<String>) throws(Problem) {
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), known.contains(name) else { continue }
            guard let value = Self.decode(parts.count == 2 ? parts[1] : "") else {
                throw Problem.invalidField(name, "is not valid percent-encoded UTF-8")
            }
            guard values.updateValue(value, forKey: name) == nil else {
                throw Problem.invalidField(name, "is given more than once")
            }
        }
    }

    private static func decode(_ text: Substring) -> String? {
        Router.percentDecode(text.replacing("+", with: " "))
    }

    /// The value given; nil when the parameter is absent.
    func string(_ name: String) -> String? {
        values[name]
    }

    /// A whole number in `range` written in decimal digits; nil when the parameter is absent.
    func integer(_ name: String, in range: ClosedRange<Int>) throws(Problem) -> Int? {
        guard let text = values[name] else { return nil }
        let reason = "must be a whole number from \(range.lowerBound) to \(range.upperBound)"
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let value = Int(text), range.contains(value)
        else { throw Problem.invalidField(name, reason) }
        return value
    }
}
