import EnvironmentModel
import Logging

/// The one place where errors become problems. Anything unexpected is logged and answered with
/// a 500 that leaks nothing.
enum ErrorMapping {
    static func problem(for error: any Error, logger: Logger) -> Problem {
        switch error {
        case let problem as Problem:
            return problem
        case let error as ProvisioningError:
            return problem(for: error, logger: logger)
        default:
            logger.error("unexpected error", metadata: ["error": "\(error)"])
            return .internalError
        }
    }

    private static func problem(for error: ProvisioningError, logger: Logger) -> Problem {
        switch error.code {
        case .conflict:
            return .conflict(error.detail, fields: error.fields, reason: error.fieldReason)
        case .notFound:
            return .notFound(error.detail)
        case .unsupportedByRelease, .invalidField:
            return .invalidFields(error.fields.map { Problem.FieldError(field: $0, reason: error.fieldReason ?? error.detail) })
        case .invalidRecord:
            return Problem(status: 409, kind: .recordInvalid, title: "Environment record cannot be trusted", detail: error.detail)
        case .messagesPending:
            return Problem(status: 409, kind: .messagesPending, title: "Messages would be lost", detail: error.detail)
        case .protected:
            return Problem(
                status: 409, kind: .protected, title: "Environment is protected from deletion", detail: error.detail)
        case .quotaExceeded:
            return Problem(status: 403, kind: .quotaExceeded, title: "Quota exceeded", detail: error.detail)
        case .rateLimited:
            return Problem(
                status: 429, kind: .rateLimited, title: "Too many requests", detail: error.detail,
                headers: [("Retry-After", String(error.retryAfterSeconds ?? 1))])
        default:
            // The broker's own reason goes to the log only: it can be an Erlang term, HTML, or
            // name internals the caller has no business seeing.
            logger.error("broker call failed", metadata: [
                "step": "\(error.step ?? "-")", "error": "\(error.cause ?? error.detail)",
            ])
            return error.isUnavailable ? .brokerUnavailable(error.detail, step: error.step) : .brokerError(error.detail, step: error.step)
        }
    }
}
