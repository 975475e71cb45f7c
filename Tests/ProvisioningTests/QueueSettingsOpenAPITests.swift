@testable import BrokerState
@testable import EnvironmentModel
import Foundation
@testable import Provisioning
import Testing

/// openapi.yaml's queue schemas against the table (`QueueSetting.all`): the queue of a request
/// (`QueueSpec`) and of an answer (`Queue`) have a property for every setting, with the
/// table's type, range and values, and no setting the table lacks.
@Suite struct QueueSettingsOpenAPITests {
    /// One schema property: its type (a `$ref` to a named schema resolved), bounds and values.
    struct Property: Equatable {
        var type: String?
        var minimum: Int?
        var maximum: Int?
        var values: [String]?
    }

    static let document: [Substring] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = (try? String(contentsOf: root.appendingPathComponent("openapi.yaml"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false)
    }()

    static func indent(_ line: Substring) -> Int { line.prefix { $0 == " " }.count }

    /// The lines of the block under `key:` at `indent`, within `lines`.
    static func block(_ key: String, indent: Int, in lines: ArraySlice<Substring>) -> ArraySlice<Substring> {
        guard let start = lines.firstIndex(where: { Self.indent($0) == indent && $0.trimmingCharacters(in: .whitespaces) == "\(key):" }) else { return [] }
        let end = lines[(start + 1)...].firstIndex { !$0.trimmingCharacters(in: .whitespaces).isEmpty && Self.indent($0) <= indent } ?? lines.endIndex
        return lines[(start + 1)..<end]
    }

    static func schema(_ name: String) -> ArraySlice<Substring> {
        block(name, indent: 4, in: block("schemas", indent: 2, in: document[...]))
    }

    static func value(_ key: String, in lines: ArraySlice<Substring>, indent: Int) -> String? {
        lines.first { Self.indent($0) == indent && $0.dropFirst(indent).hasPrefix("\(key):") }
            .map { $0.dropFirst(indent + key.count + 1).trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
    }

    static func property(_ lines: ArraySlice<Substring>, indent: Int) -> Property {
        if let ref = value("$ref", in: lines, indent: indent), let name = ref.split(separator: "/").last {
            return property(schema(String(name)), indent: 6)
        }
        let values = value("enum", in: lines, indent: indent).map {
            $0.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return Property(
            type: value("type", in: lines, indent: indent), minimum: value("minimum", in: lines, indent: indent).flatMap { Int($0) },
            maximum: value("maximum", in: lines, indent: indent).flatMap { Int($0) }, values: values)
    }

    /// The properties of a named schema, by name.
    static func properties(of name: String) -> [String: Property] {
        let lines = block("properties", indent: 6, in: schema(name))
        var result: [String: Property] = [:]
        for line in lines where indent(line) == 8 && line.hasSuffix(":") {
            let key = String(line.dropFirst(8).dropLast())
            result[key] = property(block(key, indent: 8, in: lines), indent: 10)
        }
        return result
    }

    static func expected(_ setting: QueueSetting) -> Property {
        switch setting.kind {
        case .integer(let range): Property(type: "integer", minimum: range.lowerBound, maximum: range.upperBound)
        case .boolean: Property(type: "boolean")
        case .choice(let values): Property(type: "string", values: values)
        }
    }

    @Test func theRequestQueueHasEverySettingAsTheTableSays() throws {
        let properties = Self.properties(of: "QueueSpec")
        try #require(properties["name"] != nil, "openapi.yaml's QueueSpec was not found")
        for setting in QueueSetting.all {
            #expect(properties[setting.field] == Self.expected(setting), "QueueSpec.\(setting.field)")
        }
        #expect(Set(properties.keys) == Set(["name"] + QueueSetting.all.map(\.field)))
    }

    @Test func theAnsweredQueueHasEverySettingAsTheTableSays() throws {
        let properties = Self.properties(of: "Queue")
        try #require(properties["durable"] != nil, "openapi.yaml's Queue was not found")
        for setting in QueueSetting.all {
            #expect(properties[setting.answerField]?.type == setting.answerType, "Queue.\(setting.answerField)")
        }
        #expect(Set(properties.keys) == Set(["name", "durable"] + QueueSetting.all.map(\.answerField)))
    }

    /// The reader itself: a bound in the text is read as the bound, so a changed one fails.
    @Test func theReaderReadsBounds() {
        let lines: ArraySlice<Substring> = ["          type: integer", "          minimum: 1", "          maximum: 255", "          enum: [a, b]"]
        #expect(Self.property(lines, indent: 10) == Property(type: "integer", minimum: 1, maximum: 255, values: ["a", "b"]))
    }
}
