import BrokerState
import EnvironmentModel
internal import RabbitManagement

/// A user's password as the broker keeps it (a salted hash): enough to tell which of a few
/// candidate passwords is the user's, never to recover one. What an OSB binding's answer is
/// checked against, so that a password is answered only when it logs in.
public struct StoredPassword: Sendable, Hashable {
    let hash: String

    init(hash: String) { self.hash = hash }

    /// The hash a user made with `password` would have (a fresh salt each time).
    init(of password: String) { self.hash = RabbitPasswordHash.hash(password: password) }

    public func matches(_ password: String) -> Bool {
        RabbitPasswordHash.verifies(password: password, hash: hash)
    }
}
