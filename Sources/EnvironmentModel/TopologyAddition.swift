/// What a PATCH adds to an environment: queues (new ones, or existing ones with new
/// policy-held settings), bindings, and limits.
public struct TopologyAddition: Sendable {
    public var queues: [EnvironmentSpec.Queue]
    public var bindings: [EnvironmentSpec.Binding]
    /// Replaces the limits when given.
    public var limits: EnvironmentSpec.Limits?

    public init(queues: [EnvironmentSpec.Queue] = [], bindings: [EnvironmentSpec.Binding] = [], limits: EnvironmentSpec.Limits? = nil) {
        self.queues = queues
        self.bindings = bindings
        self.limits = limits
    }
}
