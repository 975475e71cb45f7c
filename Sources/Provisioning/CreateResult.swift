import BrokerState
import EnvironmentModel
public struct CreateResult: Sendable {
    public var environment: Environment
    /// One set for each role asked for, in that order.
    public var credentials: [IssuedCredentials]
    /// False when the environment already existed with the same spec (a repeated create).
    public var created: Bool
    /// True when the environment is still being made in the background (an asynchronous
    /// create): its record says `creating`, and these credentials work once it is `ready`.
    public var pending = false
}
