import ArgumentParser
import Foundation
import WarrenClient

struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues",
        abstract: "Show each queue's messages, consumers and rates, as autoscalers read them.",
        discussion: """
            Every queue of the environment (its dead-letter queues and the queues its clients \
            declared themselves included): messages ready and unacknowledged, consumers, and \
            messages per second published and delivered. The figures are the broker's \
            statistics, which lag by its statistics interval (a few seconds).

            Examples:
              warren-cli queues orders
              warren-cli queues orders --json | jq '.queues[] | select(.name == "jobs") | .messages_ready'
            """)

    @Argument(help: "The environment's name.")
    var name: String

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    func run() async throws {
        let client = try global.client()
        let output = try await client.getQueueDepths(path: .init(id: name))
        switch output {
        case .ok(let answer):
            let depths = try answer.body.json
            if global.json {
                try Output.json(depths)
            } else if depths.queues.isEmpty {
                Output.print("No queues.")
            } else {
                Output.print(Output.table(
                    ["QUEUE", "READY", "UNACKED", "CONSUMERS", "PUBLISH/S", "DELIVER/S"],
                    depths.queues.map { queue in
                        [queue.name, String(queue.messages_ready), String(queue.messages_unacknowledged), String(queue.consumers),
                         Self.rate(queue.publish_rate), Self.rate(queue.deliver_rate)]
                    })
                    + ["", "The broker's statistics: they lag by its statistics interval (a few seconds)."])
            }
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the request with an answer this command cannot read")
        }
    }

    /// Messages per second with two decimals: a worker pool's rates are often below one.
    static func rate(_ value: Double) -> String {
        String(format: "%.2f", value)
    }
}

struct KedaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keda",
        abstract: "Print KEDA manifests that scale a Deployment on one of the environment's queues.",
        discussion: """
            Prints a Kubernetes List holding a KEDA ScaledObject (a rabbitmq trigger reading the \
            queue over AMQP) and the TriggerAuthentication it uses, as JSON, which \
            `kubectl apply -f -` takes. The TriggerAuthentication reads the AMQP URI from the key \
            `host` of a Secret that you make from the consumer role's credentials (create the \
            environment with --role consumer, or `warren-cli credentials rotate NAME --role \
            consumer`); Warren puts no password in the manifests. The command that makes the \
            Secret is printed on standard error. With --json, Warren's answer as it is.

            Examples:
              warren-cli keda orders --queue jobs | kubectl apply -f -
              warren-cli keda orders --queue jobs --deployment gpu-worker --target 5
            """)

    @Argument(help: "The environment's name.")
    var name: String

    @Option(help: ArgumentHelp("The queue to scale on.", valueName: "queue"))
    var queue: String

    @Option(help: ArgumentHelp("The Deployment to scale (default: the environment's name).", valueName: "name"))
    var deployment: String?

    @Option(help: ArgumentHelp("The Secret holding the AMQP URI under the key host (default: ENVIRONMENT-rabbitmq).", valueName: "name"))
    var secret: String?

    @Option(help: ArgumentHelp("Ready messages per replica (default: 10).", valueName: "n"))
    var target: Int?

    @Option(help: ArgumentHelp("The fewest replicas; 0 lets KEDA scale to zero (default: 0).", valueName: "n"))
    var minReplicas: Int?

    @Option(help: ArgumentHelp("The most replicas (default: 10, or --min-replicas when that is more).", valueName: "n"))
    var maxReplicas: Int?

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    func run() async throws {
        let client = try global.client()
        let output = try await client.getKedaManifests(
            path: .init(id: name),
            query: .init(
                queue: queue, deployment: deployment, secret: secret, target: target, min_replicas: minReplicas,
                max_replicas: maxReplicas))
        switch output {
        case .ok(let answer):
            let manifests = try answer.body.json
            if global.json {
                try Output.json(manifests)
            } else {
                try Output.json(KubernetesList(items: [.scaledObject(manifests.scaled_object), .triggerAuthentication(manifests.trigger_authentication)]))
                let secret = manifests.secret
                FileHandle.standardError.write(Data("""
                    # Make the Secret first, with the consumer role's username and password, percent-encoded:
                    #   kubectl create secret generic \(secret.name) --from-literal=\(secret.key)='\(secret.uri_template.replacing("{username}", with: "USERNAME").replacing("{password}", with: "PASSWORD"))'

                    """.utf8))
            }
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the request with an answer this command cannot read")
        }
    }
}

/// A Kubernetes `List`: several manifests in one JSON document, which `kubectl apply -f -` takes.
struct KubernetesList: Encodable {
    enum Item: Encodable {
        case scaledObject(Components.Schemas.KedaScaledObject)
        case triggerAuthentication(Components.Schemas.KedaTriggerAuthentication)
        case secret(Components.Schemas.KubernetesSecret)

        func encode(to encoder: any Encoder) throws {
            switch self {
            case .scaledObject(let manifest): try manifest.encode(to: encoder)
            case .triggerAuthentication(let manifest): try manifest.encode(to: encoder)
            case .secret(let manifest): try manifest.encode(to: encoder)
            }
        }
    }

    var apiVersion = "v1"
    var kind = "List"
    var items: [Item]
}
