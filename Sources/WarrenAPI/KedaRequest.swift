/// What `GET /v1/environments/{id}/keda` is asked for: its query parameters, checked and with
/// their defaults, before anything reaches the broker.
struct KedaRequest: Equatable {
    static let parameterNames: Set<String> = ["queue", "deployment", "secret", "target", "min_replicas", "max_replicas"]
    static let targetRange = 1...1_000_000
    static let minReplicasRange = 0...10_000
    static let maxReplicasRange = 1...10_000
    static let defaultTarget = 10
    static let defaultMaxReplicas = 10
    /// KEDA labels the HorizontalPodAutoscaler it makes with the ScaledObject's name (the
    /// Deployment's here), and a label value holds at most 63 characters.
    static let deploymentMaxLength = 63
    static let secretMaxLength = 253

    /// The queue to scale on: any queue of the environment (the broker's answer decides, so a
    /// name it cannot hold is simply not found).
    var queue: String
    /// The Deployment to scale; also the ScaledObject's name.
    var deployment: String
    /// The Secret holding the AMQP URI under the key `host`; also the TriggerAuthentication's name.
    var secret: String
    /// Ready messages per replica (KEDA's `value`).
    var target: Int
    var minReplicas: Int
    var maxReplicas: Int

    init(queue: String, deployment: String, secret: String, target: Int, minReplicas: Int, maxReplicas: Int) {
        self.queue = queue
        self.deployment = deployment
        self.secret = secret
        self.target = target
        self.minReplicas = minReplicas
        self.maxReplicas = maxReplicas
    }

    /// Every parameter checked, each problem named (all of them, as a body's fields are).
    /// Defaults: the Deployment is named as the environment, the Secret `{deployment
    /// default}-rabbitmq`, 10 messages per replica, 0 to 10 replicas (or to `min_replicas`
    /// when that is more and no `max_replicas` is given).
    init(query: String?, environment: String) throws(Problem) {
        let parameters = try QueryParameters(query, known: Self.parameterNames)
        var errors: [Problem.FieldError] = []
        func check<T>(_ read: () throws(Problem) -> T?) -> T? {
            do {
                return try read()
            } catch {
                errors += error.errors
                return nil
            }
        }
        let queue = parameters.string("queue")
        if queue == nil || queue == "" {
            errors.append(.init(field: "queue", reason: "is required: the name of one of the environment's queues"))
        }
        let deployment = check { () throws(Problem) in try Self.kubernetesName(parameters, "deployment", maxLength: Self.deploymentMaxLength) }
        let secret = check { () throws(Problem) in try Self.kubernetesName(parameters, "secret", maxLength: Self.secretMaxLength) }
        let target = check { () throws(Problem) in try parameters.integer("target", in: Self.targetRange) }
        let minReplicas = check { () throws(Problem) in try parameters.integer("min_replicas", in: Self.minReplicasRange) }
        let maxReplicas = check { () throws(Problem) in try parameters.integer("max_replicas", in: Self.maxReplicasRange) }
        if let minReplicas, let maxReplicas, minReplicas > maxReplicas {
            errors.append(.init(field: "max_replicas", reason: "must be at least min_replicas (\(minReplicas))"))
        }
        guard errors.isEmpty, let queue else { throw Problem.invalidFields(errors) }
        let base = Self.defaultName(environment)
        self.init(
            queue: queue, deployment: deployment ?? base, secret: secret ?? "\(base)-rabbitmq", target: target ?? Self.defaultTarget,
            minReplicas: minReplicas ?? 0, maxReplicas: maxReplicas ?? max(Self.defaultMaxReplicas, minReplicas ?? 0))
    }

    /// The environment's name as a Kubernetes name: environment names are lowercase letters,
    /// digits and '-' already, but may end with '-', which a Kubernetes name may not.
    static func defaultName(_ environment: String) -> String {
        var name = Substring(environment)
        while name.last == "-" { name = name.dropLast() }
        return name.isEmpty ? "warren" : String(name)
    }

    /// A DNS-1123 subdomain, as Kubernetes names most objects: dot-separated labels of lowercase
    /// letters, digits and '-', each starting and ending with a letter or digit.
    /// Nil when the parameter is absent.
    static func kubernetesName(_ parameters: QueryParameters, _ field: String, maxLength: Int) throws(Problem) -> String? {
        guard let name = parameters.string(field) else { return nil }
        let alphanumeric: (UInt8) -> Bool = { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }
        let labels = name.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        let valid = !name.isEmpty && name.utf8.count <= maxLength && labels.allSatisfy { label in
            guard let first = label.first, let last = label.last else { return false }
            return alphanumeric(first) && alphanumeric(last) && label.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "-") }
        }
        guard valid else {
            throw Problem.invalidField(
                field, "must be a Kubernetes name of at most \(maxLength) characters: lowercase letters, digits, '-' and '.', "
                    + "starting and ending with a letter or digit, with no '.' next to a '.' or '-'")
        }
        return name
    }
}
