import EnvironmentModel
import HTTPServer
import Provisioning
import WireFormat

/// Service instances of the Open Service Broker API: an instance is an environment, made and
/// removed by the same provisioning code as /v1 (`create`, `update`, `delete`), named after
/// the instance id (see `OSBNaming`) and marked with the platform instance in its record.
///
/// Asynchronous operations: provisioning and deprovisioning run in the background when the
/// platform sends `accepts_incomplete=true` (202, then `last_operation`), and synchronously
/// otherwise. Warren demands `accepts_incomplete=true` (422 AsyncRequired) only where the
/// answer can only come from polling: a provision repeated while the first one is still
/// running in the background. Updates and bindings are always synchronous.
struct OSBInstanceHandlers: Sendable {
    let provisioner: Provisioner
    let catalog: OSBCatalog
    let blueprints: Blueprints
    /// Finds an instance's environment and says whether this platform may act on it; holds
    /// the server secrets (WARREN_OSB_SECRET_FILE) that seal the platform instance of records.
    let instances: OSBInstanceLookup

    func lookup(_ provisioner: Provisioner, _ context: OSBContext, instanceID: String) async throws -> OSBInstanceLookup.Found {
        try await instances.find(provisioner, context, instanceID: instanceID)
    }

    static func instanceID(_ context: OSBContext) throws(OSBError) -> String {
        try OSBNaming.checkID(context.parameters["instance_id"], what: "instance id")
    }

    func catalogResponse(_ context: OSBContext) async throws -> HTTPResponse {
        catalog.response()
    }

    func provision(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try Self.instanceID(context)
        let acceptsIncomplete = try OSBQuery.acceptsIncomplete(context.request.query)
        let name = OSBNaming.environmentName(instanceID: id)
        let request = try OSBProvisionRequest.decode(
            context.request, name: name, catalog: catalog, blueprints: blueprints, ceilings: provisioner.ceilings, tiers: provisioner.tiers)
        let provisioner = provisioner.logging(to: context.logger)
        switch try await lookup(provisioner, context, instanceID: id) {
        case .other:
            throw OSBError.conflict("instance \(id) cannot be provisioned: the environment name it maps to, \(name), is taken")
        case .mine(let existing):
            guard existing.platform?.planID == request.plan.id else {
                throw OSBError.conflict("instance \(id) exists with another plan")
            }
            switch existing.state {
            case .creating:
                guard acceptsIncomplete else {
                    throw OSBError.asyncRequired("instance \(id) is still being provisioned; its outcome can only be polled (send accepts_incomplete=true)")
                }
                // The same request again? The create below would compare only once the first
                // is done: compare here, with the queues as this broker's release makes them.
                var wanted = request.spec
                wanted.queues = try await provisioner.explicit(TopologyAddition(queues: wanted.queues)).queues
                let differences = wanted.differences(from: existing.environment.spec)
                guard differences.isEmpty else {
                    throw OSBError.conflict("instance \(id) is being provisioned with other parameters: \(differences.joined(separator: ", ")) differ")
                }
                return OSBResponse.accepted(operation: "provision")
            case .deleting:
                throw OSBError.concurrency("instance \(id) is being deprovisioned")
            case .failed:
                throw OSBError.conflict("instance \(id) failed to provision (\(existing.failureReason ?? "no reason recorded")); deprovision it first")
            case .ready:
                break  // the create below compares the spec: 200 when identical, 409 otherwise
            }
        case .absent:
            break
        }
        let platform = PlatformInstance(
            platform: context.platform, instanceID: id, serviceID: OSBCatalog.serviceID, planID: request.plan.id, context: request.context,
            seal: instances.secrets.seal(team: context.team, name: name, platform: context.platform, instanceID: id))
        // Always made in the background, even when the platform waits for the answer: a
        // create that runs in the request would start over when a DELETE removed its
        // environment under it (right for /v1, whose caller still wants it), and bring the
        // instance back after the platform's orphan mitigation (its DELETE after a PUT that
        // timed out) had removed it. In the background, a DELETE simply ends it.
        let result: CreateResult
        do {
            result = try await provisioner.create(
                team: context.team, spec: request.spec, roles: [], platform: platform, tier: request.plan.tier(of: provisioner),
                finishInBackground: true)
        } catch let error as ProvisioningError where error.code == .unsupportedByRelease {
            // A parameter this broker's release does not take, named as the other parameters' problems.
            throw OSBError.badRequest("invalid parameters: " + error.fieldProblems.map { "parameters.\($0)" }.joined(separator: "; "))
        }
        if result.pending, !acceptsIncomplete {
            return try await outcome(provisioner, context, instanceID: id)
        }
        if !result.created {
            // Joined an environment that was there (or came meanwhile): it must be this
            // instance, not a /v1 environment of the same spec that won a race for the name.
            guard case .mine = try await lookup(provisioner, context, instanceID: id) else {
                throw OSBError.conflict("instance \(id) cannot be provisioned: the environment name it maps to, \(name), is taken")
            }
            return result.pending ? OSBResponse.accepted(operation: "provision") : OSBResponse.empty(200)
        }
        return result.pending ? OSBResponse.accepted(operation: "provision") : OSBResponse.empty(201)
    }

    /// Waits for a provision made in the background to settle, for a platform that did not
    /// send accepts_incomplete: 201 when it is ready; its failure reason otherwise (the vhost
    /// stays for the platform's DELETE, as after an asynchronous failure). The background work
    /// is bounded by the create deadline; the wait by that, plus a margin.
    private func outcome(_ provisioner: Provisioner, _ context: OSBContext, instanceID: String) async throws -> HTTPResponse {
        let clock = ContinuousClock()
        let deadline = clock.now + provisioner.waitLimit
        var pause = Duration.milliseconds(10)
        while clock.now < deadline {
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(250))
            guard case .mine(let environment) = try await lookup(provisioner, context, instanceID: instanceID) else {
                throw OSBError.concurrency("instance \(instanceID) was deprovisioned while it was being provisioned")
            }
            switch environment.state {
            case .creating: continue
            case .ready: return OSBResponse.empty(201)
            case .deleting: throw OSBError.concurrency("instance \(instanceID) is being deprovisioned")
            case .failed:
                throw OSBError(status: 502, error: "ProvisioningFailed", description: environment.failureReason ?? "provisioning failed")
            }
        }
        throw OSBError(status: 503, error: "BrokerUnavailable", description: "instance \(instanceID) is still being provisioned; poll last_operation", headers: [("Retry-After", "5")])
    }

    func fetch(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try Self.instanceID(context)
        guard case .mine(let environment) = try await lookup(provisioner.logging(to: context.logger), context, instanceID: id),
              environment.state == .ready, let platform = environment.platform
        else {
            // The specification: 404 also while a provision is still in progress.
            throw OSBError.notFound("no instance \(id) (or it is not provisioned yet)")
        }
        return JSON.response(200, InstanceBody(
            serviceId: platform.serviceID, planId: platform.planID, parameters: TopologyBody(environment.environment.spec)))
    }

    /// PATCH: `parameters` like a /v1 PATCH body (queues, bindings, limits to add); a plan
    /// change only where it grows the instance in place: the new plan's exchange must be the
    /// instance's, and its queues are added (or, for queues of the same name, may only change
    /// what a policy holds), exactly as a PATCH adding them would. Anything else is 422: the
    /// broker cannot turn one topology into another without deleting queues that may hold
    /// messages.
    func update(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try Self.instanceID(context)
        _ = try OSBQuery.acceptsIncomplete(context.request.query)
        var body = try OSBBody(context.request)
        body.serviceID()
        let planID = body.string("plan_id", required: false)
        let parameters = body.object("parameters") ?? [:]
        try body.finish()
        let newPlan: OSBCatalog.Plan?
        if let planID {
            guard let plan = catalog.plan(id: planID) else {
                throw OSBError.badRequest("plan_id is not one of this broker's plans (see GET /v2/catalog)")
            }
            newPlan = plan
        } else {
            newPlan = nil
        }
        var addition = TopologyAddition()
        if parameters["protected"] != nil { throw OSBError.badRequest(OSBProtection.refusal) }
        if !parameters.isEmpty {
            do {
                addition = try TopologyAdditionRequest.decode((try? JSONValue.object(parameters).encodedBytes()) ?? [])
            } catch {
                let fields = error.errors.map { "parameters.\($0.field) \($0.reason)" }
                throw OSBError.badRequest("invalid parameters: " + (fields.isEmpty ? error.detail : fields.joined(separator: "; ")))
            }
        }
        let provisioner = provisioner.logging(to: context.logger)
        guard case .mine(let environment) = try await lookup(provisioner, context, instanceID: id) else {
            throw OSBError.notFound("no instance \(id)")
        }
        switch environment.state {
        case .ready: break
        case .creating, .deleting: throw OSBError.concurrency("instance \(id) is being \(environment.state == .creating ? "provisioned" : "deprovisioned")")
        case .failed: throw OSBError.unprocessable("instance \(id) failed to provision; deprovision it")
        }
        let current = environment.environment.spec
        let planChanges = newPlan != nil && newPlan?.id != environment.platform?.planID
        if let newPlan, planChanges {
            let target = try OSBProvisionRequest.spec(
                plan: newPlan, parameters: [:], name: current.name, blueprints: blueprints,
                ceilings: provisioner.ceilings(for: environment.environment))
            guard target.exchange == current.exchange else {
                throw OSBError.unprocessable("plan \(newPlan.name) has another exchange than this instance: a plan change may only add to the topology in place")
            }
            addition.queues = target.queues + addition.queues
            addition.bindings = target.bindings + addition.bindings
            if addition.limits == nil, !target.limits.isEmpty { addition.limits = target.limits }
        }
        guard planChanges || !addition.queues.isEmpty || !addition.bindings.isEmpty || addition.limits != nil else {
            return OSBResponse.empty(200)
        }
        do {
            let explicit = try await provisioner.explicit(addition)
            let merged = try Provisioner.merge(explicit, into: current)
            var invalid = merged.validate()
            if invalid.isEmpty {
                invalid = provisioner.ceilings(for: environment.environment).problems(in: merged, limitsAsked: addition.limits != nil)
            }
            guard invalid.isEmpty else {
                throw OSBError.badRequest("the instance would become invalid: " + invalid.map { "\($0.field) \($0.reason)" }.joined(separator: "; "))
            }
            guard try await provisioner.update(team: context.team, name: current.name, adding: addition) != nil else {
                throw OSBError.notFound("no instance \(id)")
            }
        } catch let error as ProvisioningError where error.code == .conflict {
            throw OSBError.unprocessable(error.detail)
        } catch let error as ProvisioningError where error.code == .unsupportedByRelease {
            throw OSBError.badRequest("the instance would become invalid: " + error.fieldProblems.joined(separator: "; "))
        }
        if let newPlan, planChanges { try await provisioner.recordPlan(environment, planID: newPlan.id) }
        return OSBResponse.empty(200)
    }

    /// DELETE: everything of the instance goes, messages included (a platform's deprovision
    /// is not refused for them). Nothing under the name that is not this instance is touched:
    /// to the platform it is gone (410).
    ///
    /// An instance its team protected through /v1 is refused, with nothing changed: 422, the
    /// status OSB gives a request that "cannot currently be fulfilled due to the state of the
    /// Service Instance" and the one a deprovision may be refused with. Not `ConcurrencyError`:
    /// that tells the platform to wait for an operation to end, and none will; the platform
    /// keeps the instance (any 4xx: "request rejected", no orphan mitigation) and shows the
    /// description to its user, who asks the team to lift the protection.
    func deprovision(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try Self.instanceID(context)
        try OSBQuery.requireServiceAndPlan(context.request.query)
        let acceptsIncomplete = try OSBQuery.acceptsIncomplete(context.request.query)
        let provisioner = provisioner.logging(to: context.logger)
        guard case .mine(let environment) = try await lookup(provisioner, context, instanceID: id) else {
            return OSBResponse.empty(410)
        }
        // A deprovision repeated while one is under way (or after one that stopped half way)
        // runs the removal again: each step of it is idempotent, and so it finishes the job.
        let deleted: Bool
        do {
            deleted = try await provisioner.delete(
                team: context.team, name: environment.environment.name, force: true, finishInBackground: acceptsIncomplete)
        } catch let error as ProvisioningError where error.code == .protected {
            throw OSBError.unprocessable(
                "instance \(id) is protected from deletion by its team (environment \(environment.environment.name)); the team lifts the protection through /v1 (PATCH /v1/environments/\(environment.environment.name) with {\"protected\": false}), then deprovision it again")
        }
        guard deleted else { return OSBResponse.empty(410) }
        return acceptsIncomplete ? OSBResponse.accepted(operation: "deprovision") : OSBResponse.empty(200)
    }

    /// GET .../last_operation: the record's state is the operation's. An instance that is not
    /// there: 410 when the platform polls a deprovision Warren answered 202 (`operation` is
    /// what that 202 said; the platform takes 410 for its success), 404 otherwise: the
    /// specification keeps 410 for the end of an asynchronous delete, and a platform polling
    /// a provision must not read it as one.
    func lastOperation(_ context: OSBContext) async throws -> HTTPResponse {
        let id = try Self.instanceID(context)
        try OSBQuery.checkHints(context.request.query)
        guard case .mine(let environment) = try await lookup(provisioner.logging(to: context.logger), context, instanceID: id) else {
            if OSBQuery.value("operation", in: context.request.query) == "deprovision" { return OSBResponse.empty(410) }
            throw OSBError.notFound("no instance \(id)")
        }
        switch environment.state {
        case .creating: return OSBResponse.lastOperation("in progress", "provisioning")
        case .deleting: return OSBResponse.lastOperation("in progress", "deprovisioning")
        case .ready: return OSBResponse.lastOperation("succeeded", "ready")
        case .failed: return OSBResponse.lastOperation("failed", environment.failureReason ?? "provisioning failed")
        }
    }

    struct InstanceBody: Encodable {
        var serviceId: String
        var planId: String
        var parameters: TopologyBody
    }
}

/// The small bodies /v2 answers with.
enum OSBResponse {
    static func empty(_ status: Int) -> HTTPResponse {
        HTTPResponse(status: status, headers: HTTPHeaders([("Content-Type", "application/json")]), body: Array("{}".utf8))
    }

    static func accepted(operation: String) -> HTTPResponse {
        JSON.response(202, ["operation": operation])
    }

    static func lastOperation(_ state: String, _ description: String) -> HTTPResponse {
        // A hint for the platform's polling while the operation runs.
        JSON.response(200, ["state": state, "description": description], headers: state == "in progress" ? [("Retry-After", "1")] : [])
    }
}
