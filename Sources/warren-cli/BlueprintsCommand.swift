import ArgumentParser
import Foundation
import WarrenClient

struct BlueprintsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blueprints",
        abstract: "List the topologies the operators prepared.",
        discussion: """
            A blueprint is a whole topology (exchange, queues, bindings, limits) that Warren's \
            operators defined; create one with `warren-cli create NAME --blueprint BLUEPRINT`. \
            "{name}" in an exchange name stands for the environment's name.

            Examples:
              warren-cli blueprints
              warren-cli blueprints --json | jq -r '.items[].name'
            """)

    @OptionGroup(title: "Connection and output") var global: GlobalOptions

    func run() async throws {
        let client = try global.client()
        let output = try await client.listBlueprints()
        switch output {
        case .ok(let answer):
            let list = try answer.body.json
            if global.json {
                try Output.json(list)
            } else if list.items.isEmpty {
                Output.print("No blueprints: Warren's operators have defined none.")
            } else {
                Output.print(Output.table(
                    ["NAME", "EXCHANGE", "QUEUES", "DESCRIPTION"],
                    list.items.map { blueprint in
                        let exchange = "\(blueprint.exchange.name) (\(blueprint.exchange._type.rawValue))"
                        return [blueprint.name, exchange,
                                blueprint.queues.map(\.name).joined(separator: ", "), blueprint.description]
                    }))
            }
        case .undocumented(let status, let payload):
            throw CLIFailure.undocumented(status, payload)
        default:
            throw CLIFailure(.unexpected, "Warren refused the request with an answer this command cannot read")
        }
    }
}
