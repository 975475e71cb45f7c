import Crypto
import EnvironmentModel

/// A Kubernetes Secret in the servicebinding.io layout (https://servicebinding.io/spec/core/1.0.0/):
/// what `kubectl apply -f` takes as it is, so a workload reads the credentials Warren issued
/// from a mounted binding. Rendered from one credential set and the connection details the
/// answer carries anyway; it knows nothing of roles beyond their names, so any credential set
/// an answer issues (full, producer, consumer, or a role added later) renders the same way.
struct KubernetesSecret: Encodable, Equatable {
    struct Metadata: Encodable, Equatable {
        var name: String
        var namespace: String?
        var labels: [String: String]
    }

    var apiVersion = "v1"
    var kind = "Secret"
    var metadata: Metadata
    /// The binding's type as servicebinding.io prefixes it, so `kubectl get secrets` shows what it is.
    var type = "servicebinding.io/rabbitmq"
    /// `stringData`, not `data`: Kubernetes base64-encodes it on write, and the manifest stays
    /// readable.
    var stringData: [String: String]

    /// Kubernetes spells its keys in camelCase (`apiVersion`, `stringData`), and answers convert
    /// property names to snake_case: a dictionary's keys are written as they are, so the
    /// manifest goes out as one.
    func encode(to encoder: any Encoder) throws {
        enum Field: Encodable {
            case text(String)
            case metadata(Metadata)
            case entries([String: String])

            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .text(let text): try container.encode(text)
                case .metadata(let metadata): try container.encode(metadata)
                case .entries(let entries): try container.encode(entries)
                }
            }
        }
        var container = encoder.singleValueContainer()
        try container.encode([
            "apiVersion": Field.text(apiVersion), "kind": .text(kind), "metadata": .metadata(metadata),
            "type": .text(type), "stringData": .entries(stringData),
        ])
    }

    /// The parts of one credential set that the Secret needs.
    struct Source {
        /// The environment's name (Warren's, not the vhost's).
        var environment: String
        /// What distinguishes this set among the environment's: its role, or a binding.
        var setName: String
        var role: String
        var username: String
        var password: String
        var connection: ConnectionBody
    }

    init(_ source: Source, namespace: String?) {
        metadata = Metadata(
            name: Self.name(environment: source.environment, setName: source.setName),
            namespace: namespace,
            labels: [
                "app.kubernetes.io/managed-by": "warren",
                "warren/environment": Self.labelValue(source.environment),
                "warren/role": Self.labelValue(source.role),
            ])
        stringData = [
            "type": "rabbitmq",
            "provider": "warren",
            "host": source.connection.host,
            // Every entry of a Secret is a string.
            "port": String(source.connection.port),
            "username": source.username,
            "password": source.password,
            "vhost": source.connection.vhost,
            "uri": source.connection.uri,
        ]
    }

    static let nameMaxLength = 253
    static let labelValueMaxLength = 63

    /// `{environment}-{set}`, made a valid DNS-1123 subdomain of at most 253 characters. The
    /// same for every issue of the same set, so applying a rotated set replaces the Secret
    /// workloads read. A name that had to be changed to be valid (an upper-case letter, a
    /// character Kubernetes refuses, too long) ends with 10 hex digits of the SHA-256 of the
    /// name asked for, so two sets whose names differ only in what was changed stay apart.
    static func name(environment: String, setName: String) -> String {
        kubernetesSafe("\(environment)-\(setName)", maxLength: nameMaxLength, allowDots: true)
    }

    /// A label value: at most 63 characters of letters, digits, '-', '_' and '.', beginning and
    /// ending with a letter or digit; changed (with a hash) as `name` is when it must be.
    static func labelValue(_ value: String) -> String {
        kubernetesSafe(value, maxLength: labelValueMaxLength, allowDots: false)
    }

    private static func kubernetesSafe(_ wanted: String, maxLength: Int, allowDots: Bool) -> String {
        let alphanumeric: (UInt8) -> Bool = { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }
        // Lower-case letters, digits, '-' (never after a '.') and, for a name, '.' after a letter
        // or digit; anything else becomes '-'.
        var bytes: [UInt8] = []
        for byte in wanted.utf8 {
            let lowered = (0x41...0x5A).contains(byte) ? byte + 0x20 : byte
            if alphanumeric(lowered) {
                bytes.append(lowered)
            } else if lowered == UInt8(ascii: "."), allowDots, let last = bytes.last, alphanumeric(last) {
                bytes.append(lowered)
            } else if let last = bytes.last, last != UInt8(ascii: ".") {
                bytes.append(UInt8(ascii: "-"))
            }
        }
        func trimEnd() {
            while let last = bytes.last, !alphanumeric(last) { bytes.removeLast() }
        }
        trimEnd()
        if bytes == Array(wanted.utf8), bytes.count <= maxLength { return wanted }
        let suffix = Array(Hex.string(SHA256.hash(data: Array(wanted.utf8)).prefix(5)).utf8)
        bytes = Array(bytes.prefix(maxLength - suffix.count - 1))
        trimEnd()
        return String(decoding: bytes.isEmpty ? suffix : bytes + [UInt8(ascii: "-")] + suffix, as: UTF8.self)
    }
}

/// `?secret=kubernetes` and `?secret_namespace=NS` on an operation that issues credentials:
/// checked before anything is done, so a bad value is a 400 that changes nothing.
struct SecretRequest: Equatable {
    static let parameterNames: Set<String> = ["secret", "secret_namespace"]
    static let namespaceMaxLength = 63

    /// Where the manifests go; nil leaves the namespace to `kubectl apply -n`.
    var namespace: String?

    /// Nil when the caller asked for no Secret. A namespace given alone asks for one too: what
    /// else could it mean (and openapi.yaml can then state every rule of the two).
    static func parse(query: String?) throws(Problem) -> SecretRequest? {
        let parameters = try QueryParameters(query, known: parameterNames)
        return try parse(kind: parameters.string("secret"), namespace: parameters.string("secret_namespace"), prefix: "")
    }

    /// The same choice from wherever it was written (a query, or OSB bind `parameters`, whose
    /// field names carry `prefix`).
    static func parse(kind: String?, namespace: String?, prefix: String) throws(Problem) -> SecretRequest? {
        var errors: [Problem.FieldError] = []
        if let kind, kind != "kubernetes" {
            errors.append(.init(field: prefix + "secret", reason: "must be kubernetes (the only kind of Secret Warren renders)"))
        }
        if let namespace, !isNamespace(namespace) {
            errors.append(.init(
                field: prefix + "secret_namespace",
                reason: "must be a Kubernetes namespace name (an RFC 1123 label): 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit"))
        }
        guard errors.isEmpty else { throw Problem.invalidFields(errors) }
        return kind == nil && namespace == nil ? nil : SecretRequest(namespace: namespace)
    }

    /// An RFC 1123 label, as Kubernetes checks a namespace's name.
    static func isNamespace(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        let alphanumeric: (UInt8) -> Bool = { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }
        guard let first = bytes.first, let last = bytes.last, bytes.count <= namespaceMaxLength else { return false }
        return alphanumeric(first) && alphanumeric(last) && bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    func render(_ sources: [KubernetesSecret.Source]) -> [KubernetesSecret] {
        sources.map { KubernetesSecret($0, namespace: namespace) }
    }
}

extension KubernetesSecret.Source {
    /// One set an answer issues, with the connection the answer gives for it.
    init(environment: String, vhost: String, credentials: IssuedCredentials, endpoint: AMQPEndpoint, setName: String? = nil) {
        self.init(
            environment: environment, setName: setName ?? credentials.role.name, role: credentials.role.name,
            username: credentials.username, password: credentials.password,
            connection: endpoint.connection(vhost: vhost, credentials: credentials))
    }
}
