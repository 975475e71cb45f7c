import ArgumentParser
import WarrenClient

/// `--kubernetes-secret [--namespace NS]` on the commands that issue credentials: Warren renders
/// each issued set as a Secret in the servicebinding.io layout, and the command prints them as
/// one Kubernetes List (JSON, which `kubectl apply -f -` takes) instead of its text.
struct KubernetesSecretOptions: ParsableArguments {
    @Flag(help: "Print the issued credentials as Kubernetes Secrets (servicebinding.io layout), a List ready for `kubectl apply -f -`, instead of text.")
    var kubernetesSecret = false

    @Option(help: ArgumentHelp("The namespace written into the Secrets (with --kubernetes-secret).", valueName: "namespace"))
    var namespace: String?

    func validate() throws {
        if namespace != nil, !kubernetesSecret {
            throw ValidationError("--namespace goes with --kubernetes-secret.")
        }
    }

    var asked: Bool { kubernetesSecret }

    /// The query parameters to send (both nil when no Secret was asked for).
    var secret: Components.Parameters.Secret? { kubernetesSecret ? .kubernetes : nil }
    var secretNamespace: String? { kubernetesSecret ? namespace : nil }

    /// Prints the List; an answer without the Secrets asked for is Warren's fault, not the caller's.
    static func print(_ secrets: [Components.Schemas.KubernetesSecret]?) throws {
        guard let secrets, !secrets.isEmpty else {
            throw CLIFailure(.unexpected, "Warren's answer holds no Kubernetes Secret though one was asked for")
        }
        try Output.json(KubernetesList(items: secrets.map { .secret($0) }))
    }
}
