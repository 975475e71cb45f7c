import Foundation
import OpenAPIRuntime
import WarrenClient

/// A request body from `--file PATH` (`-`: standard input), decoded into the generated type
/// before anything is sent: a field the schema does not name, a value of the wrong type or an
/// unknown enum value is refused here, naming the field, as Warren would refuse it.
/// (Patterns and ranges are Warren's to check: its answer names the field too.)
enum BodyFile {
    /// The file's JSON object; `name`, when given, put in (or over) its `name` field.
    static func decode<Body: Decodable>(_ type: Body.Type, from path: String, name: String? = nil) throws -> Body {
        let data = try read(path)
        let place = path == "-" ? "standard input" : path
        var object: OpenAPIObjectContainer
        do {
            object = try JSONDecoder().decode(OpenAPIObjectContainer.self, from: data)
        } catch {
            throw CLIFailure(.invalid, "\(place) does not hold a JSON object")
        }
        if let name {
            var fields = object.value
            fields["name"] = name
            try object.setValue(validating: fields)
        }
        do {
            return try JSONDecoder().decode(Body.self, from: try JSONEncoder().encode(object))
        } catch let error as DecodingError {
            throw CLIFailure(.invalid, "\(place) is not a valid body for this command: \(describe(error))")
        }
    }

    private static func read(_ path: String) throws -> Data {
        if path == "-" {
            return FileHandle.standardInput.readDataToEndOfFile()
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CLIFailure(.usage, "--file \(path) cannot be read: \(error.localizedDescription)")
        }
    }
}
