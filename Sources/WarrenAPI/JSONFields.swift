import WireFormat

/// Reads typed fields out of one JSON object, collecting a message per bad field, named by its
/// path in the request ("queues[1].max_priority").
struct JSONFields {
    let object: [String: JSONValue]
    let path: String
    var errors: [Problem.FieldError] = []

    init(_ object: [String: JSONValue], path: String = "") {
        self.object = object
        self.path = path
    }

    mutating func string(_ key: String, required: Bool = false) -> String? {
        switch object[key] {
        case .string(let value): return value
        case nil where !required: return nil
        case nil: fail(key, "is required")
        case .null: fail(key, "must be a string, not null")
        default: fail(key, "must be a string")
        }
        return nil
    }

    mutating func integer(_ key: String) -> Int? {
        switch object[key] {
        case .int(let value): return value
        // JSON has one number type: 531.0 is the whole number 531 (JSON Schema's integer agrees).
        case .number(let value) where value == value.rounded() && abs(value) < 9e15: return Int(value)
        case nil: return nil
        case .null: fail(key, "must be a whole number, not null")
        default: fail(key, "must be a whole number")
        }
        return nil
    }

    mutating func bool(_ key: String) -> Bool? {
        switch object[key] {
        case .bool(let value): return value
        case nil: return nil
        case .null: fail(key, "must be true or false, not null")
        default: fail(key, "must be true or false")
        }
        return nil
    }

    mutating func object(_ key: String) -> [String: JSONValue]? {
        switch object[key] {
        case .object(let value): return value
        case nil: return nil
        case .null: fail(key, "must be an object, not null")
        default: fail(key, "must be an object")
        }
        return nil
    }

    mutating func array(_ key: String) -> [JSONValue]? {
        switch object[key] {
        case .array(let value): return value
        case nil: return nil
        case .null: fail(key, "must be an array, not null")
        default: fail(key, "must be an array")
        }
        return nil
    }

    /// An object whose values are all strings (header values to match, say).
    mutating func stringMap(_ key: String) -> [String: String]? {
        guard let map = object(key) else { return nil }
        var result: [String: String] = [:]
        for (name, value) in map {
            guard case .string(let text) = value else {
                fail(key, "values must be strings")
                return nil
            }
            result[name] = text
        }
        return result
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ key: String, _: T.Type) -> T? where T.RawValue == String {
        guard let raw = string(key) else { return nil }
        if let value = T(rawValue: raw) { return value }
        fail(key, "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        return nil
    }

    mutating func rejectUnknown(allowed: Set<String>) {
        for key in object.keys.sorted() where !allowed.contains(key) {
            fail(key, "is not a known field")
        }
    }

    mutating func fail(_ key: String, _ reason: String) {
        errors.append(Problem.FieldError(field: path + key, reason: reason))
    }
}
