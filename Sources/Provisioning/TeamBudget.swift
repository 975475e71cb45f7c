import BrokerState
import EnvironmentModel
import Locking

/// How much of something each team may do per minute, across its environments: a token bucket
/// per team, as full as the ceiling, refilled evenly over the minute. Two use it: credentials
/// issued (`Ceilings.rotationsPerMinute`) and requests that read the broker
/// (`Ceilings.readsPerMinute`). Held in this process: with several Warren instances a team gets
/// the budget once per instance. Teams that stay under it leave nothing behind worth keeping:
/// a full bucket is forgotten.
final class TeamBudget: Sendable {
    private struct Bucket {
        var tokens: Double
        var at: ContinuousClock.Instant
    }

    private let perMinute: Int
    private let buckets = PThreadMutex<[String: Bucket]>([:])

    init(perMinute: Int) {
        self.perMinute = perMinute
    }

    /// Takes one from the team's budget; nil when there was one, else how long until there is.
    func take(team: String, now: ContinuousClock.Instant = .now) -> Duration? {
        let capacity = Double(perMinute)
        let perSecond = capacity / 60
        return buckets.withLock { buckets in
            var bucket = buckets[team] ?? Bucket(tokens: capacity, at: now)
            let elapsed = now - bucket.at
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(capacity, bucket.tokens + max(0, seconds) * perSecond)
            bucket.at = now
            guard bucket.tokens >= 1 else {
                buckets[team] = bucket
                return .milliseconds(Int(((1 - bucket.tokens) / perSecond * 1000).rounded(.up)))
            }
            bucket.tokens -= 1
            buckets[team] = bucket
            // Forget buckets that are full again, so the table holds only busy teams.
            if buckets.count > 1024 {
                buckets = buckets.filter { _, other in other.tokens + Double((now - other.at).components.seconds) * perSecond < capacity }
            }
            return nil
        }
    }

    /// One from the team's budget, or a `rateLimited` error saying `what` the team does too
    /// often, the ceiling, and when to try again (whole seconds, at least one).
    func take(team: String, doing what: String) throws {
        guard let wait = take(team: team) else { return }
        let seconds = max(1, Int(wait.components.seconds) + (wait.components.attoseconds > 0 ? 1 : 0))
        var error = ProvisioningError(
            code: .rateLimited,
            detail: "team \(team) \(what) faster than the operator's ceiling of \(perMinute) per minute; try again in \(seconds) s")
        error.retryAfterSeconds = seconds
        throw error
    }
}
