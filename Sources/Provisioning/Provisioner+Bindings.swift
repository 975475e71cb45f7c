import BrokerState
import Crypto
import EnvironmentModel
import FoundationEssentials
internal import RabbitManagement

/// Open Service Broker bindings without storage: a binding is one user of the environment,
/// whose name and password are derived from the binding id, so nothing about a binding needs
/// to be remembered anywhere. The name has the shape of every environment user
/// ("{vhost}.{incarnation}{8 hex}", the 8 hex from SHA-256 of the binding id), so deletes,
/// the janitor and GET of the environment treat binding users like any other; the password
/// is an HMAC-SHA256 of the server's secret over vhost, incarnation and binding id, so a
/// repeated identical bind answers the same credentials, and any Warren with the same secret
/// agrees.
public enum BindingIdentity {
    /// The user of `bindingID` in the environment of `vhost` and `incarnation`.
    public static func username(vhost: String, incarnation: String, bindingID: String) -> String {
        let digest = Array(SHA256.hash(data: Array(bindingID.utf8)))
        return EnvironmentNaming.userPrefix(vhost: vhost) + incarnation + hex(digest.prefix(4))
    }

    /// The password of `bindingID`'s user: base64url (no padding) of HMAC-SHA256(secret, ...).
    /// The three parts are separated by NUL, which none of them contains, so no two triples
    /// give the same message.
    public static func password(secret: [UInt8], vhost: String, incarnation: String, bindingID: String) -> String {
        let message = Array(vhost.utf8) + [0] + Array(incarnation.utf8) + [0] + Array(bindingID.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        return String(Data(Array(mac)).base64EncodedString().compactMap { character -> Character? in
            switch character {
            case "+": "-"
            case "/": "_"
            case "=": nil
            default: character
            }
        })
    }

    public static func credentials(secret: [UInt8], environment: PlatformEnvironment, bindingID: String, role: Role) -> IssuedCredentials {
        let vhost = environment.environment.vhost
        return IssuedCredentials(
            username: username(vhost: vhost, incarnation: environment.incarnation, bindingID: bindingID),
            password: password(secret: secret, vhost: vhost, incarnation: environment.incarnation, bindingID: bindingID),
            role: role)
    }

    private static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }
}

/// What a bind found or did.
public enum BindOutcome: Sendable, Equatable {
    /// The user was made now.
    case created
    /// The user exists with the same role: the same binding, asked for again.
    case existing
    /// The user exists with another role: the binding id was used with other parameters.
    case otherRole(Role)
}

extension Provisioner {
    /// Makes the binding's user unless it exists. Never changes a user that exists (a binding
    /// id asked again with another role is the caller's conflict to report).
    public func bind(_ environment: PlatformEnvironment, credentials: IssuedCredentials) async throws -> BindOutcome {
        let env = environment.environment
        return try await whileItExists(env, incarnation: environment.incarnation) {
            if let role = try await bindingRole(environment, username: credentials.username) {
                return role == credentials.role ? .existing : .otherRole(role)
            }
            try await withRoomForUsers(in: env) { _ in
                do {
                    try await makeUser(credentials, for: env)
                } catch {
                    await rollBack(vhost: env.vhost, incarnation: nil, users: [credentials.username])
                    throw error
                }
            }
            logger.info("binding user made", metadata: ["vhost": "\(env.vhost)", "user": "\(credentials.username)", "role": "\(credentials.role.name)"])
            return .created
        }
    }

    /// The role of the binding's user when it exists (holds permissions on the vhost), else nil.
    public func bindingRole(_ environment: PlatformEnvironment, username: String) async throws -> Role? {
        let vhost = environment.environment.vhost
        guard EnvironmentNaming.isUser(username, of: vhost) else { return nil }
        return try await step("read permissions") { try await admin.permissions(vhost: vhost) }
            .first { $0.user == username }
            .map(Role.of)
    }

    /// The password of the binding's user as the broker keeps it, nil when there is no such
    /// user: which secret made it is the caller's to tell (the secret may have been rotated since).
    public func bindingPassword(_ environment: PlatformEnvironment, username: String) async throws -> StoredPassword? {
        guard EnvironmentNaming.isUser(username, of: environment.environment.vhost) else { return nil }
        return try await step("read user") { try await admin.passwordHash(ofUser: username) }.map(StoredPassword.init(hash:))
    }

    /// Deletes the binding's user; false when there was none.
    public func unbind(_ environment: PlatformEnvironment, username: String) async throws -> Bool {
        let vhost = environment.environment.vhost
        guard EnvironmentNaming.isUser(username, of: vhost) else { return false }
        let deleted = try await step("delete user") { try await admin.deleteUser(username) }
        if deleted { logger.info("binding user deleted", metadata: ["vhost": "\(vhost)", "user": "\(username)"]) }
        return deleted
    }
}
