import Provisioning
import WireFormat

/// The answer to `GET /v1/environments/{id}/queues` (openapi.yaml's `QueueDepths`): each queue's
/// counts and rates, by name. Keys are snake_cased on encoding.
struct QueueDepthsBody: Encodable {
    struct Queue: Encodable {
        var name: String
        /// Ready and unacknowledged together: what a worker pool still has to finish.
        var messages: Int
        var messagesReady: Int
        var messagesUnacknowledged: Int
        var consumers: Int
        var publishRate: Double
        var deliverRate: Double

        init(_ depth: QueueDepth) {
            name = depth.name
            messages = depth.messagesReady + depth.messagesUnacknowledged
            messagesReady = depth.messagesReady
            messagesUnacknowledged = depth.messagesUnacknowledged
            consumers = depth.consumers
            publishRate = depth.publishRate
            deliverRate = depth.deliverRate
        }
    }

    var queues: [Queue]
}

/// The answer to `GET /v1/environments/{id}/keda` (openapi.yaml's `KedaManifests`): a KEDA
/// ScaledObject and its TriggerAuthentication, each a Kubernetes manifest as JSON that
/// `kubectl apply -f -` takes, and the Secret they read, which the team makes itself: Warren
/// puts no password here. Encoded with the keys as written (`JSON.encode(keysAsWritten:)`):
/// the manifests' keys are Kubernetes's camelCase, the answer's own are snake_case.
struct KedaManifestsBody: Encodable {
    var scaledObject: KedaScaledObject
    var triggerAuthentication: KedaTriggerAuthentication
    var secret: KedaSecret

    enum CodingKeys: String, CodingKey {
        case scaledObject = "scaled_object", triggerAuthentication = "trigger_authentication", secret
    }

    /// The trigger reads the queue over AMQP, as KEDA's `rabbitmq` scaler does with
    /// `protocol: amqp`: a passive declaration, whose answer counts the ready messages. The
    /// URI in the Secret names the vhost too; `vhostName` says it again, so the manifest reads
    /// whole without the Secret.
    init(_ request: KedaRequest, vhost: String, endpoint: AMQPEndpoint) {
        scaledObject = KedaScaledObject(
            metadata: .init(name: request.deployment),
            spec: .init(
                scaleTargetRef: .init(name: request.deployment), minReplicaCount: request.minReplicas,
                maxReplicaCount: request.maxReplicas,
                triggers: [
                    .init(
                        metadata: .init(value: String(request.target), queueName: request.queue, vhostName: vhost),
                        authenticationRef: .init(name: request.secret))
                ]))
        triggerAuthentication = KedaTriggerAuthentication(
            metadata: .init(name: request.secret), spec: .init(secretTargetRef: [.init(name: request.secret)]))
        secret = KedaSecret(
            name: request.secret, uriTemplate: "amqp://{username}:{password}@\(endpoint.authority)/\(PercentEncoding.encode(vhost))")
    }
}

/// A Kubernetes object's `metadata`, and the references that name an object alike.
struct KubernetesName: Encodable {
    var name: String
}

struct KedaScaledObject: Encodable {
    struct Spec: Encodable {
        var scaleTargetRef: KubernetesName
        var minReplicaCount: Int
        var maxReplicaCount: Int
        var triggers: [Trigger]
    }

    struct Trigger: Encodable {
        var type = "rabbitmq"
        var metadata: TriggerMetadata
        var authenticationRef: KubernetesName
    }

    /// KEDA's trigger metadata is a map of strings: `value` too.
    struct TriggerMetadata: Encodable {
        var `protocol` = "amqp"
        var mode = "QueueLength"
        var value: String
        var queueName: String
        var vhostName: String
    }

    var apiVersion = "keda.sh/v1alpha1"
    var kind = "ScaledObject"
    var metadata: KubernetesName
    var spec: Spec
}

struct KedaTriggerAuthentication: Encodable {
    struct Spec: Encodable {
        var secretTargetRef: [SecretTargetRef]
    }

    /// The trigger's `host` parameter (the AMQP URI, credentials and vhost in it) is the
    /// Secret's key `host`.
    struct SecretTargetRef: Encodable {
        var parameter = "host"
        var name: String
        var key = "host"
    }

    var apiVersion = "keda.sh/v1alpha1"
    var kind = "TriggerAuthentication"
    var metadata: KubernetesName
    var spec: Spec
}

/// The Secret the team makes: its name, its key, and the URI to put there with the consumer
/// role's username and password filled in, percent-encoded (RFC 6570 `{username}`).
struct KedaSecret: Encodable {
    var name: String
    var key = "host"
    var uriTemplate: String

    enum CodingKeys: String, CodingKey { case name, key, uriTemplate = "uri_template" }
}
