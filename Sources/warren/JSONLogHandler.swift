import Logging
import Synchronization

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
        var fields = metadata
        if let explicit { fields.merge(explicit) { _, new in new } }
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(UInt8(ascii: "{"))
        JSONLine.member("ts", Timestamp.now(), into: &out)
        JSONLine.member("level", level.rawValue, into: &out)
        JSONLine.member("logger", label, into: &out)
        JSONLine.member("msg", message.description, into: &out)
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) where !JSONLine.reserved.contains(key) {
            JSONLine.member(key, "\(value)", into: &out)
        }
        out[out.count - 1] = UInt8(ascii: "}")
        out.append(0x0A)
        // Whole lines go to the writer, so lines from different threads never interleave.
        writer.append(out)
    }
}

/// JSON string members, escaped per RFC 8259 §7.
enum JSONLine {
    /// Keys the handler writes itself; metadata of the same name would make a duplicate key.
    static let reserved: Set<String> = ["ts", "level", "logger", "msg"]

    static func member(_ key: String, _ value: String, into out: inout [UInt8]) {
        string(key, into: &out)
        out.append(UInt8(ascii: ":"))
        string(value, into: &out)
        out.append(UInt8(ascii: ","))
    }

    static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// RFC 3339 UTC timestamps with milliseconds; the text up to the seconds is made once a second.
enum Timestamp {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let second = spec.tv_sec
        let millis = Int(spec.tv_nsec / 1_000_000)
        let prefix = cache.withLock { cached -> String in
            if cached.second == second { return cached.text }
            var time = second
            var parts = tm()
            gmtime_r(&time, &parts)
            let text = "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))"
            cached = (second, text)
            return text
        }
        return "\(prefix).\(millis < 10 ? "00" : millis < 100 ? "0" : "")\(millis)Z"
    }

    private static func pad(_ value: Int32) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }
}
