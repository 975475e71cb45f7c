// libFuzzer harness for the HTTP/1.1 request parser (Sources/HTTPServer/HTTPRequestParser*.swift).
// Built and run by scripts/fuzz.sh: compiled into one module with the parser's sources, so the
// parser's internal API is visible. Checks invariants, not just "no crash":
//   - a complete head consumed at most the input, and ends with the empty line (CRLF CRLF);
//   - everything a complete head holds passed the RFC 9112 rules (token method, origin-form
//     target, HTTP/1.0 or 1.1, token field names, no controls in values, one Host on 1.1,
//     no Transfer-Encoding, a Content-Length header that agrees with contentLength <= limit);
//   - a complete request's body is exactly Content-Length bytes, taken right after the head;
//   - feeding the bytes in two or three growing pieces (as the event loop does) gives the same
//     answer as feeding them at once;
//   - a complete head, written back out, parses to the same head.
// The first input byte picks the limits (default or tiny), so 413/414/431 paths are reached.

private let tinyLimits = HTTPParserLimits(maxRequestLineBytes: 64, maxHeaderBytes: 128, maxBodyBytes: 100)

private func fail(_ message: String, _ input: [UInt8]) -> Never {
    let shown = String(decoding: input.prefix(400), as: UTF8.self).debugDescription
    fatalError("parser invariant violated: \(message)\ninput (\(input.count) bytes): \(shown)")
}

private func isToken(_ s: String) -> Bool { !s.isEmpty && s.utf8.allSatisfy(\.isTokenChar) }

private func describe(_ r: HTTPParseResult) -> String {
    switch r {
    case .complete(let head, let consumed): return "complete(\(head.method) \(head.path), consumed \(consumed))"
    case .incomplete: return "incomplete"
    case .invalid(let status, let detail): return "invalid(\(status), \(detail))"
    }
}

/// Same answer: same kind; complete heads equal with equal consumed; invalid with equal status.
private func same(_ a: HTTPParseResult, _ b: HTTPParseResult) -> Bool {
    switch (a, b) {
    case (.complete(let h1, let c1), .complete(let h2, let c2)): return h1 == h2 && c1 == c2
    case (.incomplete, .incomplete): return true
    case (.invalid(let s1, _), .invalid(let s2, _)): return s1 == s2
    default: return false
    }
}

private func checkHead(_ head: HTTPRequestHead, consumed: Int, _ input: [UInt8], _ limits: HTTPParserLimits) {
    guard consumed > 0, consumed <= input.count else { fail("consumed \(consumed) of \(input.count) bytes", input) }
    guard consumed >= 4, Array(input[(consumed - 4)..<consumed]) == Array("\r\n\r\n".utf8) else {
        fail("a complete head does not end with CRLF CRLF", input)
    }
    guard isToken(head.method) else { fail("method \(head.method.debugDescription) is not a token", input) }
    guard head.path.hasPrefix("/"), !head.path.contains("?") else { fail("path \(head.path.debugDescription)", input) }
    let target = head.path + (head.query.map { "?" + $0 } ?? "")
    guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }) else {
        fail("target has a byte outside the URI characters: \(target.debugDescription)", input)
    }
    guard head.version == "HTTP/1.1" || head.version == "HTTP/1.0" else { fail("version \(head.version)", input) }
    for (name, value) in head.headers {
        guard isToken(name) else { fail("field name \(name.debugDescription)", input) }
        guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
            fail("field value with a control byte: \(value.debugDescription)", input)
        }
        guard value.utf8.first != 0x20, value.utf8.first != 0x09, value.utf8.last != 0x20, value.utf8.last != 0x09 else {
            fail("field value not trimmed: \(value.debugDescription)", input)
        }
    }
    let hosts = head.headers.values("host").count
    guard hosts <= 1, hosts == 1 || head.version == "HTTP/1.0" else { fail("\(hosts) Host fields", input) }
    guard !head.headers.contains("TRANSFER-ENCODING") else { fail("Transfer-Encoding accepted", input) }
    guard head.contentLength >= 0, head.contentLength <= limits.maxBodyBytes else {
        fail("contentLength \(head.contentLength) outside 0...\(limits.maxBodyBytes)", input)
    }
    let lengths = head.headers.values("Content-Length")
    if lengths.isEmpty {
        guard head.contentLength == 0 else { fail("contentLength \(head.contentLength) without Content-Length", input) }
    } else {
        // RFC 9110 §5.6.1: empty list elements do not count.
        let elements = lengths.flatMap { $0.split(separator: ",") }.map { $0.trimmingOWS() }.filter { !$0.isEmpty }
        guard !elements.isEmpty else { fail("Content-Length \(lengths) has no value", input) }
        for field in lengths {
            for element in field.split(separator: ",") where !element.trimmingOWS().isEmpty {
                let digits = element.trimmingOWS()
                guard digits.utf8.allSatisfy(\.isDigit),
                      Int(digits.drop { $0 == "0" }.isEmpty ? "0" : String(digits.drop { $0 == "0" })) == head.contentLength
                else { fail("Content-Length \(field.debugDescription) but contentLength \(head.contentLength)", input) }
            }
        }
    }
    // Lookups ignore ASCII case.
    guard head.headers["content-length"] == head.headers["CONTENT-LENGTH"],
          head.headers["host"] == head.headers["Host"]
    else { fail("case-insensitive lookup disagrees", input) }
}

/// Writes a parsed head back out; it must parse to the same head.
private func roundTrip(_ head: HTTPRequestHead, _ input: [UInt8], _ limits: HTTPParserLimits) {
    var text = "\(head.method) \(head.path)\(head.query.map { "?" + $0 } ?? "") \(head.version)\r\n"
    for (name, value) in head.headers { text += "\(name):\(value)\r\n" }  // no OWS: never longer
    text += "\r\n"
    let bytes = Array(text.utf8)
    // The rewrite is never longer than the original (no leading empty lines, no OWS), so it is
    // within the same limits, except that bytes that were not UTF-8 come back as U+FFFD (3 bytes).
    let repaired = head.headers.contains { $0.value.unicodeScalars.contains("\u{FFFD}") }
    switch HTTPRequestParser.parse(bytes, limits: limits) {
    case .complete(let again, let consumed):
        guard again == head, consumed == bytes.count else {
            fail("the head written back parses differently: \(again) vs \(head)", input)
        }
    case let other:
        if !repaired { fail("the head written back gives \(describe(other))", input) }
    }
}

private func fuzzOne(_ input: [UInt8]) {
    guard let selector = input.first else { return }
    let limits = selector & 1 == 0 ? HTTPParserLimits() : tinyLimits
    let bytes = Array(input.dropFirst())

    let whole = HTTPRequestParser.parse(bytes, limits: limits)
    if case .complete(let head, let consumed) = whole {
        checkHead(head, consumed: consumed, bytes, limits)
        roundTrip(head, bytes, limits)
    }
    if case .invalid(let status, let detail) = whole {
        guard [400, 411, 413, 414, 431, 501, 505].contains(status), !detail.isEmpty else {
            fail("unexpected refusal \(status) \(detail)", bytes)
        }
    }

    // The same bytes in growing pieces, split at points the input itself picks.
    if bytes.count > 1 {
        let a = Int(selector >> 1) % bytes.count
        let b = a + (bytes.count - a) / 2
        var parser = HTTPRequestParser(limits: limits)
        var result = HTTPParseResult.incomplete
        var stoppedEarly = false
        for cut in [a, b, bytes.count] where cut > 0 {
            result = parser.parse(Array(bytes[..<cut]))
            if case .incomplete = result { continue }
            stoppedEarly = cut < bytes.count
            break
        }
        if stoppedEarly {
            // A prefix already decided: a complete head must be the same head as from the whole
            // input; a refusal of a prefix must still be a refusal of the whole.
            switch (result, whole) {
            case (.complete, _):
                guard same(result, whole) else { fail("prefix gave \(describe(result)), whole \(describe(whole))", bytes) }
            case (.invalid, .invalid): break
            default: fail("prefix gave \(describe(result)), whole \(describe(whole))", bytes)
            }
        } else if !same(result, whole) {
            fail("in pieces \(describe(result)), at once \(describe(whole))", bytes)
        }
    }

    // The whole request: head plus a Content-Length body.
    switch HTTPRequestParser.parseRequest(bytes, limits: limits) {
    case .complete(let request, let consumed):
        guard case .complete(let head, let headConsumed) = whole else { fail("parseRequest complete, parse \(describe(whole))", bytes) }
        guard consumed <= bytes.count, consumed == headConsumed + head.contentLength else {
            fail("request consumed \(consumed), head \(headConsumed) + body \(head.contentLength)", bytes)
        }
        guard request.body.count == head.contentLength, request.body[...] == bytes[headConsumed..<consumed] else {
            fail("body of \(request.body.count) bytes, Content-Length \(head.contentLength)", bytes)
        }
        guard request.method == head.method, request.path == head.path, request.headers == head.headers else {
            fail("request differs from its head", bytes)
        }
    case .incomplete:
        switch whole {
        case .incomplete: break
        case .complete(let head, let consumed):
            guard bytes.count - consumed < head.contentLength else { fail("body present but request incomplete", bytes) }
        case .invalid: fail("parseRequest incomplete, parse \(describe(whole))", bytes)
        }
    case .invalid(let status, _):
        guard case .invalid(let s, _) = whole, s == status else { fail("parseRequest invalid \(status), parse \(describe(whole))", bytes) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
