import RabbitManagement

extension Provisioner {
    /// The broker's version when the management API answers and Warren's credential has the
    /// administrator tag (management or policymaker alone cannot create vhosts and users).
    public func readiness() async throws -> String {
        async let whoami = step("check credential") { try await admin.whoami() }
        async let overview = step("read overview") { try await admin.overview() }
        guard try await whoami.tags.contains("administrator") else {
            throw ProvisioningError(code: .broker, detail: "Warren's management user lacks the administrator tag")
        }
        return try await overview.rabbitmqVersion
    }
}
