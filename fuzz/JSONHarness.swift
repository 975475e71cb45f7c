// libFuzzer harness for request decoding: the strict JSON parser (Sources/WireFormat/StrictJSON.swift,
// with JSONValue beside it) and POST /v1/environments body decoding
// (CreateEnvironmentRequest.swift, with the model's name rules and queue settings, and Problem).
// Built and run by scripts/fuzz.sh. Invariants beyond "no crash":
//   - a refusal names a reason and an offset inside the input;
//   - an accepted document, written back out as JSON, parses to the same value;
//   - surrounding whitespace changes nothing, and trailing garbage is always refused;
//   - an accepted document is also accepted by Foundation's JSONDecoder, with equal values
//     (the strict parser may refuse more, never less);
//   - decoding either yields a spec that passes validation, or a 400 problem naming fields
//     that exist, never both and never another status; the problem body is JSON.
import FoundationEssentials
import EnvironmentModel
import WireFormat

private func fail(_ message: String, _ input: [UInt8]) -> Never {
    let shown = String(decoding: input.prefix(400), as: UTF8.self).debugDescription
    fatalError("JSON invariant violated: \(message)\ninput (\(input.count) bytes): \(shown)")
}

/// Canonical JSON text: sorted keys, every non-ASCII-printable scalar escaped.
private func write(_ value: JSONValue, into out: inout String) {
    switch value {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .int(let i): out += String(i)
    case .number(let d): out += d.isFinite ? "\(d)" : (d < 0 ? "-1e999" : "1e999")
    case .string(let s): writeString(s, into: &out)
    case .array(let items):
        out += "["
        for (i, item) in items.enumerated() {
            if i > 0 { out += "," }
            write(item, into: &out)
        }
        out += "]"
    case .object(let members):
        out += "{"
        for (i, key) in members.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            writeString(key, into: &out)
            out += ":"
            write(members[key]!, into: &out)
        }
        out += "}"
    }
}

private func writeString(_ s: String, into out: inout String) {
    out += "\""
    for unit in s.utf16 {
        switch unit {
        case 0x22: out += "\\\""
        case 0x5C: out += "\\\\"
        case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
        default:
            let hex = String(unit, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }
    }
    out += "\""
}

/// Numbers compare by value (1 == 1.0), everything else structurally. `loose` allows the last
/// digits of a double to differ (Foundation's decoder does not always round to nearest).
private func equivalentValues(_ a: JSONValue, _ b: JSONValue, loose: Bool) -> Bool {
    func close(_ x: Double, _ y: Double) -> Bool {
        x == y || (loose && abs(x - y) <= 1e-12 * max(abs(x), abs(y)))
    }
    func equivalent(_ a: JSONValue, _ b: JSONValue) -> Bool { equivalentValues(a, b, loose: loose) }
    switch (a, b) {
    case (.int(let x), .int(let y)): return x == y
    case (.number(let x), .number(let y)): return close(x, y)
    case (.int(let x), .number(let y)), (.number(let y), .int(let x)): return close(Double(x), y)
    case (.string(let x), .string(let y)): return x == y
    case (.bool(let x), .bool(let y)): return x == y
    case (.null, .null): return true
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equivalent($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { key, value in y[key].map { equivalent(value, $0) } ?? false }
    default: return false
    }
}

private func allFinite(_ v: JSONValue) -> Bool {
    switch v {
    case .number(let d): return d.isFinite
    case .array(let items): return items.allSatisfy(allFinite)
    case .object(let members): return members.values.allSatisfy(allFinite)
    default: return true
    }
}

/// The top-level members of a POST /v1/environments body (CreateEnvironmentRequest.keys).
private let knownMembers: Set<String> = ["name", "blueprint", "exchange", "queue", "routing_key", "queues",
                                         "bindings", "limits", "roles"]

/// "queues[2].type" -> "queues"; "exchange.name" -> "exchange".
private func root(_ field: String) -> String {
    String(field.prefix { $0 != "." && $0 != "[" })
}

private func fuzzOne(_ bytes: [UInt8]) {
    let parsed: JSONValue?
    do {
        parsed = try StrictJSON.parse(bytes)
    } catch {
        guard !error.reason.isEmpty, error.offset >= 0, error.offset <= bytes.count else {
            fail("refusal \(error.reason.debugDescription) at offset \(error.offset) of \(bytes.count)", bytes)
        }
        parsed = nil
    }

    // Whitespace around the document is insignificant; anything else after it is not.
    let padded = Array(" \r\n\t".utf8) + bytes + Array("\n ".utf8)
    let paddedResult = try? StrictJSON.parse(padded)
    switch (parsed, paddedResult) {
    case (let a?, let b?): guard equivalentValues(a, b, loose: false) else { fail("whitespace changed the value", bytes) }
    case (nil, nil): break
    default: fail("whitespace changed acceptance (\(parsed == nil ? "refused" : "accepted") bare)", bytes)
    }
    if parsed != nil, (try? StrictJSON.parse(bytes + Array(" x".utf8))) != nil {
        fail("trailing garbage accepted", bytes)
    }

    if let value = parsed {
        var text = ""
        write(value, into: &text)
        let again: JSONValue
        do {
            again = try StrictJSON.parse(Array(text.utf8))
        } catch {
            fail("its own rewrite \(text.prefix(200).debugDescription) is refused: \(error.reason) at \(error.offset)", bytes)
        }
        guard equivalentValues(value, again, loose: false) else { fail("the rewrite \(text.prefix(200).debugDescription) parses differently", bytes) }

        if allFinite(value) {
            do {
                let lenient = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
                guard equivalentValues(value, lenient, loose: true) else {
                    fail("Foundation reads \(lenient.compactJSON.prefix(200)), strict \(value.compactJSON.prefix(200))", bytes)
                }
            } catch {
                fail("strict accepted what Foundation refuses: \(error)", bytes)
            }
        }
    }

    do {
        let request = try CreateEnvironmentRequest.decode(bytes)
        guard let object = parsed?.objectValue else { fail("a spec from a body that is not a JSON object", bytes) }
        let problems = request.spec.validate()
        guard problems.isEmpty else { fail("decoded spec fails validation: \(problems)", bytes) }
        guard object["name"]?.stringValue == request.spec.name else { fail("spec name is not the body's name", bytes) }
    } catch {
        guard error.status == 400 else { fail("decode threw status \(error.status)", bytes) }
        switch error.slug {
        case "malformed-json":
            guard parsed?.objectValue == nil else { fail("malformed-json for an object body", bytes) }
        case "invalid-field":
            guard let object = parsed?.objectValue else { fail("invalid-field for a non-object body", bytes) }
            guard !error.errors.isEmpty else { fail("invalid-field without errors", bytes) }
            for fieldError in error.errors {
                // Every error names a member Warren knows, or one the body sent (unknown fields).
                let member = root(fieldError.field)
                guard object[fieldError.field] != nil || knownMembers.contains(member) || object[member] != nil else {
                    fail("error names field \(fieldError.field.debugDescription)", bytes)
                }
                guard !fieldError.reason.isEmpty else { fail("empty reason for \(fieldError.field)", bytes) }
            }
        default:
            fail("unexpected problem \(error.slug)", bytes)
        }
        // The problem must serialise (it goes on the wire), as JSON.
        let response = error.response()
        guard (try? StrictJSON.parse(response.body))?.objectValue != nil else { fail("problem body is not a JSON object", bytes) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
