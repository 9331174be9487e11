// `faultline quarantine list|approve ID|release NODE|hold NODE|unhold NODE|reset-breaker`: the
// operator's side of the remediation policy, through the running service's admin API (docs/api.md).

import FleetModel
import Foundation
import Net

struct QuarantineCommand: Command {
    static let name = "quarantine"
    static let summary = "list quarantines; approve, release, hold or unhold; reset the breaker (admin API)"
    static let usage =
        "quarantine list|approve ID|release NODE|hold NODE|unhold NODE|reset-breaker --server HOST:PORT --token-file FILE [--json]"
    static let help = """
        Talks to a running `faultline serve` with the operator's token:
          list            the nodes Faultline quarantined, the quarantines waiting (held by a guard or
                          for approval), the breaker, the nodes on hold, the latest decisions
          approve ID      let a quarantine waiting for approval run (through the other guards)
          release NODE    put a node Faultline quarantined back (parked ones too)
          hold NODE       no automatic quarantine or release of NODE until unhold
          unhold NODE
          reset-breaker   close the breaker a guard opened; held quarantines gone stale are dropped

        options:
          --server HOST:PORT   the service (default 127.0.0.1:8080)
          --token-file FILE    the operator's token, one line (the @admin token of the tokens file)
          --json               the service's JSON answer as it came
        """

    let verb: String
    let target: String?
    let server: String
    let tokenPath: String
    let json: Bool

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["server", "token-file"], flags: ["json"], positionals: 2)
        guard let verb = options.positionals.first else { throw CommandError.usage("expected a subcommand") }
        let needsTarget = ["approve", "release", "hold", "unhold"].contains(verb)
        guard needsTarget || ["list", "reset-breaker"].contains(verb) else {
            throw CommandError.usage("unknown subcommand '\(verb)'")
        }
        guard options.positionals.count == (needsTarget ? 2 : 1) else {
            throw CommandError.usage(needsTarget ? "\(verb) needs one ID or NODE" : "\(verb) takes no argument")
        }
        self.verb = verb
        target = needsTarget ? options.positionals[1] : nil
        server = options.value("server") ?? "127.0.0.1:8080"
        tokenPath = try options.required("token-file")
        json = options.flag("json")
    }

    func run(io: some CommandIO) throws(CommandError) {
        let token = String(decoding: try readFile(tokenPath, limit: 4096), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let path: String
        switch verb {
        case "list": path = "/v1/quarantine"
        case "reset-breaker": path = "/v1/quarantine/reset-breaker"
        default:
            let encoded = target!.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
            path = "/v1/quarantine/\(verb)/\(encoded)"
        }
        let response: HTTPClient.Response
        do {
            let client = try HTTPClient(connectingTo: try SocketAddress.parse(server), timeout: .seconds(30))
            response = try client.send(verb == "list" ? "GET" : "POST", path, headers: ["Authorization": "Bearer \(token)"])
        } catch {
            throw CommandError.io("\(server): \(error)")
        }
        guard response.status == 200 else {
            let message = (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["error"] as? String
            throw CommandError.data("\(server): HTTP \(response.status): \(message ?? response.text)")
        }
        if json {
            io.write(response.text + "\n")
            return
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw CommandError.data("\(server): the answer is not JSON")
        }
        io.write(Self.readable(object))
    }

    /// The answer for people.
    static func readable(_ object: [String: Any]) -> String {
        var out = ""
        func decisionLine(_ d: [String: Any]) -> String {
            let subject = (d["node"] as? String) ?? (d["component"] as? String) ?? ""
            let reason = (d["reason"] as? String).map { $0.isEmpty ? "" : "  (\($0))" } ?? ""
            return "  \(d["time"] as? String ?? "")  \(d["decision"] as? String ?? "")  \(subject)  \(d["class"] as? String ?? "")\(reason)\n"
        }
        if let decisions = object["decisions"] as? [[String: Any]] {
            out += decisions.isEmpty ? "done; no decision followed\n" : "decisions:\n" + decisions.map(decisionLine).joined()
            return out
        }
        let breaker = object["breaker"] as? [String: Any]
        out += "action: \(object["action"] as? String ?? "?")   breaker: "
            + ((breaker?["open"] as? Bool) == true ? "OPEN (\(breaker?["reason"] as? String ?? ""))" : "closed") + "\n"
        let quarantined = object["quarantined"] as? [[String: Any]] ?? []
        out += "quarantined (\(quarantined.count)):\n"
        for q in quarantined {
            out += "  \(q["node"] as? String ?? "")  since \(q["since"] as? String ?? "")  \(q["class"] as? String ?? "") on \(q["component"] as? String ?? "")"
                + ((q["parked"] as? Bool) == true ? "  PARKED: a human releases it" : "") + "\n"
        }
        let pending = object["pending"] as? [[String: Any]] ?? []
        out += "waiting (\(pending.count)):\n"
        for p in pending {
            out += "  \(p["id"] as? String ?? "")  \(p["state"] as? String ?? "")  \(p["class"] as? String ?? "") on \(p["component"] as? String ?? "")\n"
        }
        let onHold = object["onHold"] as? [String] ?? []
        if !onHold.isEmpty { out += "on hold: \(onHold.joined(separator: ", "))\n" }
        let recent = object["recentDecisions"] as? [[String: Any]] ?? []
        if !recent.isEmpty { out += "latest decisions:\n" + recent.suffix(20).map(decisionLine).joined() }
        return out
    }
}
