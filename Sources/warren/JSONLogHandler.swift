import Locking
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// One JSON object a line on stderr: easy to ship, grep and parse. Bootstrapped by the
/// executable only; the libraries just take a Logger.
///
/// Written by hand rather than with JSONEncoder: at one line per request this is on the hot
/// path, and the encoder plus a date formatter cost about a third of the server's CPU in the
/// benchmarks (BENCHMARKS.md).
struct JSONLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    let label: String
    let writer: LogWriter

    init(label: String, level: Logger.Level, writer: LogWriter = .standardError) {
        self.label = label
        self.logLevel = level
        self.writer = writer
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// swift-log 1.16 hands a handler the whole event (the older per-field entry point is
    /// deprecated); only level, message and metadata go into the line.
    func log(event: LogEvent) {
        line(level: event.level, message: event.message, metadata: event.metadata)
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
        source: String, file: String, function: String, line: UInt
    ) {
        self.line(level: level, message: message, metadata: explicit)
    }

    private func line(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?) {
        var out = JSONLine.start(level: level, logger: label, message: message.description)
        // The event's metadata over the logger's, sorted by key. A small array rather than a
        // merged dictionary: this runs once per request (the access line), and merging, hashing
        // and interpolating each value cost more than the rest of the line (BENCHMARKS.md).
        var fields: [(key: String, value: Logger.MetadataValue)] = []
        fields.reserveCapacity(metadata.count + (explicit?.count ?? 0))
        if let explicit {
            for field in explicit { fields.append(field) }
            for field in metadata where explicit[field.key] == nil { fields.append(field) }
        } else {
            for field in metadata { fields.append(field) }
        }
        fields.sort { $0.key < $1.key }
        for (key, value) in fields where !JSONLine.isReserved(key) {
            JSONLine.member(key, value, into: &out)
        }
        JSONLine.end(&out)
        // Whole lines go to the writer, so lines from different threads never interleave.
        writer.append(out)
    }
}

/// One log line: a JSON object of string members, escaped per RFC 8259 §7.
enum JSONLine {
    /// `{"ts":…,"level":…,"logger":…,"msg":…,` — the members every line starts with.
    static func start(level: Logger.Level, logger: String, message: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(UInt8(ascii: "{"))
        string("ts", into: &out)
        out.append(UInt8(ascii: ":"))
        Timestamp.append(into: &out)
        out.append(UInt8(ascii: ","))
        member("level", level.rawValue, into: &out)
        member("logger", logger, into: &out)
        member("msg", message, into: &out)
        return out
    }

    /// Closes the object (over the last member's comma) and ends the line.
    static func end(_ out: inout [UInt8]) {
        out[out.count - 1] = UInt8(ascii: "}")
        out.append(0x0A)
    }

    /// Keys the handler writes itself; metadata of the same name would make a duplicate key.
    static func isReserved(_ key: String) -> Bool {
        key == "ts" || key == "level" || key == "logger" || key == "msg"
    }

    static func member(_ key: String, _ value: String, into out: inout [UInt8]) {
        string(key, into: &out)
        out.append(UInt8(ascii: ":"))
        string(value, into: &out)
        out.append(UInt8(ascii: ","))
    }

    /// A metadata value as a JSON string: strings as they are, anything else as its description.
    static func member(_ key: String, _ value: Logger.MetadataValue, into out: inout [UInt8]) {
        switch value {
        case .string(let text): member(key, text, into: &out)
        case .stringConvertible(let convertible): member(key, convertible.description, into: &out)
        case .array, .dictionary: member(key, value.description, into: &out)
        }
    }

    static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            // Most values (ids, routes, numbers) need no escape: copied in one go.
            if !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                out.append(contentsOf: bytes)
                return
            }
            for byte in bytes { escape(byte, into: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func escape(_ byte: UInt8, into out: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
        case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
        case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case 0x00..<0x20:
            out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
            out.append(hexDigit(byte >> 4))
            out.append(hexDigit(byte & 0x0F))
        default: out.append(byte)
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }
}

/// RFC 3339 UTC timestamps with milliseconds, as a JSON string; the text up to the seconds is
/// made once a second.
enum Timestamp {
    private static let cache = PThreadMutex<(second: Int, text: [UInt8])>((-1, []))

    static func append(into out: inout [UInt8]) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let second = spec.tv_sec
        let millis = Int(spec.tv_nsec / 1_000_000)
        cache.withLock { cached in
            if cached.second != second {
                var time = second
                var parts = tm()
                gmtime_r(&time, &parts)
                let text = "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))"
                cached = (second, Array(text.utf8))
            }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: cached.text)
        }
        out.append(contentsOf: [
            UInt8(ascii: "."), digit(millis / 100), digit(millis / 10 % 10), digit(millis % 10),
            UInt8(ascii: "Z"), UInt8(ascii: "\""),
        ])
    }

    private static func digit(_ value: Int) -> UInt8 { UInt8(ascii: "0") + UInt8(value) }

    private static func pad(_ value: Int32) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }
}
