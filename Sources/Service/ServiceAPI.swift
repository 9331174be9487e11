// The HTTP API of `faultline serve` (docs/api.md): the routes and their handlers over a `Correlator`,
// authorization per endpoint, JSON bodies with sorted keys, and the /metrics families.

import Engine
import FleetModel
import Foundation
import Net
import Policy
import QuantileSketch

/// Builds the service's router.
public enum ServiceAPI {
    /// Every route. `serverCounters` gives the HTTP server's counters for /metrics once it runs;
    /// `agentPort`, the fleet's agent UDP port, adds where each peer answers to the pinglists.
    public static func router(
        _ correlator: Correlator, agentPort: UInt16? = nil,
        serverCounters: @escaping @Sendable () -> HTTPServer.Counters? = { nil }
    ) -> Router {
        var router = Router()
        let processStart = Date().timeIntervalSince1970
        router.post("/v1/reports") { request in
            let result = try correlator.ingest(
                body: request.body, contentType: request.headers["Content-Type"],
                authorization: request.headers["Authorization"])
            return json(
                202,
                .object([
                    "stored": .number(Double(result.stored)),
                    "duplicates": .number(Double(result.duplicates)),
                ]))
        }
        router.get("/v1/pinglist/{node}") { request in
            let name = request.pathParameters["node"] ?? ""
            let principal = try authorize(correlator, request, node: NodeName(name))
            _ = principal
            guard let node = NodeName(name), correlator.topology.node(node) != nil else {
                throw HTTPError(404, "unknown node '\(name)'", field: "path")
            }
            let topology = correlator.topology
            let planned = correlator.pinglist.pairs(from: node)
            let pairs = planned.map { pair -> JSONValue in
                var entry: [String: JSONValue] = [
                    "src": .string(pair.src.description), "dst": .string(pair.dst.description),
                    "class": .string(pair.pathClass.rawValue),
                ]
                if let route = topology.route(of: pair) {
                    entry["path"] = .array(route.map { .string($0.rawValue) })
                }
                return .object(entry)
            }
            var body: [String: JSONValue] = ["node": .string(node.rawValue), "pairs": .array(pairs)]
            if let agentPort {
                body["addresses"] = .object(
                    peerAddresses(of: node, destinations: planned.map(\.dst), in: topology, port: agentPort))
            }
            return json(200, .object(body))
        }
        router.get("/v1/findings") { request in
            _ = try authorize(correlator, request, node: nil)
            let stateName = request.query["state"] ?? "open"
            var since: Timestamp?
            if let text = request.query["since"] {
                guard let time = Timestamp(rfc3339: text) else {
                    throw HTTPError(
                        400, "'\(text)' is not RFC 3339 UTC like 2026-11-21T10:00:00Z", field: "query.since")
                }
                since = time
            }
            let findings: [Finding]
            switch stateName {
            case "open":
                findings = correlator.openFindings.filter { since == nil || $0.window >= since! }
            case "all":
                do { findings = try correlator.findingEvents(since: since) } catch {
                    throw HTTPError(500, "the store could not be read")
                }
            default:
                throw HTTPError(400, "state must be open or all, not '\(stateName)'", field: "query.state")
            }
            let text = findings.map { $0.jsonLine + "\n" }.joined()
            return HTTPResponse(
                status: 200, headers: ["Content-Type": "application/x-ndjson"], body: Array(text.utf8))
        }
        router.get("/v1/components/{id}") { request in
            _ = try authorize(correlator, request, node: nil)
            let id = request.pathParameters["id"] ?? ""
            guard let component = correlator.topology.component(named: id) else {
                throw HTTPError(404, "no component '\(id)' in the topology", field: "path")
            }
            let history: (findings: [Finding], report: Report?)
            do { history = try correlator.componentHistory(component) } catch {
                throw HTTPError(500, "the store could not be read")
            }
            let open = correlator.openFindings.filter { $0.component == component }
            var body: [String: JSONValue] = [
                "component": .string(component.description), "kind": .string(component.kind),
                "state": .string(open.isEmpty ? "healthy" : "faulty"),
                "openFindings": .array(open.map(findingJSON)),
                "findings": .array(history.findings.map(findingJSON)),
            ]
            if let report = history.report {
                body["pairsWindow"] = .string(report.windowStart.description)
                body["pairs"] = .array(pairStatistics(report, component: component))
            } else {
                body["pairs"] = .array([])
            }
            return json(200, .object(body))
        }
        router.get("/v1/nodes") { request in
            _ = try authorize(correlator, request, node: nil)
            let nodes = correlator.nodes().map { status -> JSONValue in
                .object([
                    "node": .string(status.node.rawValue), "state": .string(status.state),
                    "lastReportWindow": status.lastReportWindow.map { .string($0.description) } ?? .null,
                    "reasons": .array(status.reasons.map { .string($0) }),
                ])
            }
            return json(200, .object(["nodes": .array(nodes)]))
        }
        router.get("/v1/quarantine") { request in
            _ = try authorize(correlator, request, node: nil)
            guard let remediator = correlator.remediator else { throw HTTPError(404, "remediation is not running") }
            return json(200, quarantineJSON(remediator.snapshot))
        }
        // Operator commands (docs/api.md): approve a waiting quarantine, reset the breaker, release,
        // hold or unhold a node. Each answers with the decisions it caused.
        for verb in OperatorCommand.verbs {
            let pattern = verb == "reset-breaker" ? "/v1/quarantine/reset-breaker" : "/v1/quarantine/\(verb)/{target}"
            router.post(pattern) { request in
                _ = try authorize(correlator, request, node: nil)
                guard let remediator = correlator.remediator else { throw HTTPError(404, "remediation is not running") }
                let target = request.pathParameters["target"] ?? ""
                guard let command = OperatorCommand(verb: verb, target: target) else {
                    throw HTTPError(400, "'\(target)' is not a node name", field: "node")  // the router matched the rest
                }
                switch remediator.apply(command, by: "operator") {
                case .success(let decisions):
                    return json(200, .object(["decisions": .array(decisions.map(decisionJSON))]))
                case .failure(let error):
                    throw HTTPError(409, error.message)
                }
            }
        }
        router.get("/healthz") { _ in json(200, .object(["status": .string("alive")])) }
        router.get("/readyz") { _ in
            correlator.isReady
                ? json(200, .object(["status": .string("ready")]))
                : HTTPResponse.error(
                    503, "not ready: the store is closed, or the engine is rebuilding or behind")
        }
        router.get("/metrics") { _ in
            let text = Metrics.render(
                families(correlator, server: serverCounters(), processStart: processStart))
            return HTTPResponse(
                status: 200, headers: ["Content-Type": Metrics.contentType], body: Array(text.utf8))
        }
        return router
    }

    /// 401 without a known token; 403 for a node's token unless `node` is that node. The admin
    /// token passes everywhere.
    @discardableResult
    static func authorize(
        _ correlator: Correlator, _ request: HTTPRequest, node: NodeName?
    ) throws(HTTPError)
        -> Principal
    {
        let authorization = request.headers["Authorization"]
        guard let principal = correlator.principal(authorization: authorization) else {
            throw HTTPError(
                401, authorization == nil ? "missing bearer token" : "unknown token", field: "Authorization",
                headers: ["WWW-Authenticate": "Bearer"])
        }
        switch principal {
        case .admin: return principal
        case .node(let holder):
            guard let node, holder == node else {
                throw HTTPError(
                    403,
                    node == nil
                        ? "this endpoint needs the operator's token"
                        : "a node may read its own pinglist only",
                    field: "Authorization")
            }
            return principal
        }
    }

    /// Where `destinations` answer UDP probes: `node/rail` → the rail's topology `address` and the
    /// fleet's agent port, for each destination of another node whose rail has a numeric IP address
    /// (the agent answers its own probes itself).
    static func peerAddresses(
        of node: NodeName, destinations: [EndpointID], in topology: Topology, port: UInt16
    ) -> [String: JSONValue] {
        var addresses: [String: JSONValue] = [:]
        for endpoint in destinations where endpoint.node != node {
            // A rail address that is not a numeric IP is left out (the agent would refuse the whole
            // pinglist for it): that peer is unaddressed, not the fleet.
            guard let rail = topology.node(endpoint.node)?.rails.first(where: { $0.endpoint == endpoint }),
                let host = rail.address, let address = try? SocketAddress(host: host, port: port)
            else { continue }
            addresses[endpoint.description] = .string(address.description)
        }
        return addresses
    }

    static func json(_ status: Int, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse.json(status, bytes: Array(value.jsonText.utf8))
    }

    /// A findings event as the §5 object.
    static func findingJSON(_ finding: Finding) -> JSONValue {
        .object([
            "window": .string(finding.window.description), "event": .string(finding.event.rawValue),
            "component": .string(finding.component.description), "kind": .string(finding.component.kind),
            "class": .string(finding.faultClass),
            "confidence": .number((finding.confidence * 1000).rounded() / 1000),
            "evidence": .object(finding.evidence),
        ])
    }

    /// A decision as a JSON object (the fields of its JSON line).
    static func decisionJSON(_ decision: Decision) -> JSONValue {
        .object([
            "time": .string(decision.time.description), "decision": .string(decision.kind.rawValue),
            "id": .string(decision.id), "node": decision.node.map { .string($0.description) } ?? .null,
            "component": .string(decision.component), "class": .string(decision.faultClass),
            "reason": .string(decision.reason),
        ])
    }

    /// `GET /v1/quarantine`: the nodes out, what waits, the breaker, the nodes on hold, the latest decisions.
    static func quarantineJSON(_ snapshot: Remediator.Snapshot) -> JSONValue {
        let quarantined = snapshot.quarantined.keys.sorted().map { node -> JSONValue in
            let q = snapshot.quarantined[node]!
            return .object([
                "node": .string(node.description), "id": .string(q.id), "since": .string(q.since.description),
                "component": .string(q.component), "class": .string(q.faultClass),
                "cleanWindows": .number(Double(q.cleanWindows)), "parked": .bool(q.parked),
            ])
        }
        let pending = snapshot.pending.map { p -> JSONValue in
            let state: String
            switch p.state {
            case .held: state = "held"
            case .retry: state = "retry"
            case .awaitingApproval: state = "awaiting-approval"
            case .approved(let until): state = "approved until \(until)"
            }
            return .object([
                "id": .string(p.id), "node": .string(p.node.description), "created": .string(p.created.description),
                "component": .string(p.component), "class": .string(p.faultClass), "state": .string(state),
                "confidence": .number((p.confidence * 1000).rounded() / 1000),
            ])
        }
        return .object([
            "action": .string(snapshot.actionName), "quarantined": .array(quarantined), "pending": .array(pending),
            "breaker": snapshot.breaker.map { .object(["open": .bool(true), "reason": .string($0)]) }
                ?? .object(["open": .bool(false)]),
            "onHold": .array(snapshot.onHold.map { .string($0.description) }),
            "recentDecisions": .array(snapshot.recent.map(decisionJSON)),
        ])
    }

    /// The pairs of `report` that involve `component` (all of them for its node), with quantiles.
    static func pairStatistics(_ report: Report, component: Component) -> [JSONValue] {
        report.pairs.filter { pair in
            if case .endpoint(let endpoint) = component {
                return pair.src == endpoint || pair.dst == endpoint
            }
            return true
        }.prefix(512).map { pair in
            var entry: [String: JSONValue] = [
                "src": .string(pair.src.description), "dst": .string(pair.dst.description),
                "sent": .number(Double(pair.sent)), "lost": .number(Double(pair.lost)),
            ]
            if let bytes = pair.rttMicros?.decodedBytes, let sketch = try? QuantileSketch(decoding: bytes),
                let answers = try? sketch.quantiles([0.5, 0.9, 0.99, 0.999])
            {
                for (name, answer) in zip(["p50Micros", "p90Micros", "p99Micros", "p999Micros"], answers) {
                    entry[name] = .number((answer * 1000).rounded() / 1000)
                }
                entry["samples"] = .number(Double(sketch.count))
            }
            return .object(entry)
        }
    }

    /// Every family /metrics shows.
    static func families(
        _ correlator: Correlator, server: HTTPServer.Counters?, processStart: Double
    ) -> [MetricFamily] {
        let counters = correlator.counterSnapshot
        var families: [MetricFamily] = []
        func family(
            _ name: String, _ kind: MetricFamily.Kind, _ help: String, _ fill: (inout MetricFamily) -> Void
        ) {
            var family = MetricFamily(name, kind, help: help)
            fill(&family)
            families.append(family)
        }
        family("faultline_report_requests_total", .counter, "POST /v1/reports requests answered, by status.")
        {
            for (status, count) in counters.reportRequestsByStatus {
                $0.add(count, labels: [("status", "\(status)")])
            }
            if counters.reportRequestsByStatus.isEmpty { $0.add(0, labels: [("status", "202")]) }
        }
        family("faultline_reports_total", .counter, "Reports by what the store did with them.") {
            for outcome in ["stored", "duplicate-same", "conflict"] {
                $0.add(counters.reportsByOutcome[outcome] ?? 0, labels: [("outcome", outcome)])
            }
        }
        let engine = counters.engine
        family(
            "faultline_engine_reports_total", .counter,
            "Stored reports by what the engine did: accepted, or counted and not applied."
        ) {
            for (outcome, count) in [
                ("accepted", engine.reportsAccepted), ("late", engine.reportsLate),
                ("duplicate", engine.reportsDuplicate),
                ("wrong-window-length", engine.reportsWrongWindowLength),
                ("unknown-node", engine.reportsUnknownNode), ("too-far-ahead", engine.reportsTooFarAhead),
                ("too-old", counters.reportsTooOld),
            ] { $0.add(count, labels: [("outcome", outcome)]) }
        }
        family("faultline_engine_pairs_dropped_total", .counter, "Pairs the engine could not use, by reason.")
        {
            for (reason, count) in [
                ("unknown-endpoint", engine.pairsUnknownEndpoint), ("invalid-path", engine.pairsInvalidPath),
                ("invalid-sketch", engine.pairsInvalidSketch),
            ] { $0.add(count, labels: [("reason", reason)]) }
        }
        family("faultline_engine_pairs_judged_total", .counter, "Pairs judged in closed windows.") {
            $0.add(engine.pairsJudged)
        }
        family("faultline_engine_windows_closed_total", .counter, "Windows the engine closed.") {
            $0.add(engine.windowsClosed)
        }
        families.append(
            counters.windowClose.family(
                "faultline_window_close_seconds",
                help: "Time to close due windows and record their findings, per tick that closed any."))
        family("faultline_open_findings", .gauge, "Open findings, by component kind and fault class.") {
            family in
            var counts: [String: (kind: String, faultClass: String, count: Int)] = [:]
            for finding in correlator.openFindings {
                let key = finding.component.kind + " " + finding.faultClass
                counts[key, default: (finding.component.kind, finding.faultClass, 0)].count += 1
            }
            for key in counts.keys.sorted() {
                let entry = counts[key]!
                family.add(entry.count, labels: [("kind", entry.kind), ("class", entry.faultClass)])
            }
        }
        family("faultline_store_bytes", .gauge, "The store's file plus its write-ahead log, in bytes.") {
            $0.add(Double(correlator.storeBytes))
        }
        family(
            "faultline_ingest_queue_depth", .gauge,
            "Report requests waiting for or running on the engine's queue."
        ) {
            $0.add(correlator.ingestQueue.pending)
        }
        family("faultline_ingest_queue_capacity", .gauge, "Report requests the ingest queue admits at once.")
        {
            $0.add(correlator.ingestQueue.capacity)
        }
        family(
            "faultline_ingest_queue_rejections_total", .counter, "Report requests answered 503: queue full."
        ) {
            $0.add(counters.ingestQueueRejections)
        }
        family("faultline_store_errors_total", .counter, "Store writes that failed.") {
            $0.add(counters.storeErrors)
        }
        if let server {
            family("faultline_http_responses_total", .counter, "HTTP responses written, by status code.") {
                for (code, count) in server.responsesByStatus { $0.add(count, labels: [("code", "\(code)")]) }
            }
            family(
                "faultline_http_connections_total", .counter,
                "Connections admitted or rejected (over the cap)."
            ) {
                $0.add(server.connectionsAccepted, labels: [("result", "accepted")])
                $0.add(server.connectionsRejected, labels: [("result", "rejected")])
            }
            family("faultline_http_connections_open", .gauge, "Connections open now.") {
                $0.add(server.connectionsOpen)
            }
            family("faultline_http_received_bytes_total", .counter, "Bytes received (bytes in).") {
                $0.add(server.bytesIn)
            }
            family("faultline_http_sent_bytes_total", .counter, "Bytes sent.") { $0.add(server.bytesOut) }
            family("faultline_http_timeouts_total", .counter, "Connections timed out, by which timeout.") {
                $0.add(server.readTimeouts, labels: [("timeout", "read")])
                $0.add(server.idleTimeouts, labels: [("timeout", "idle")])
                $0.add(server.writeTimeouts, labels: [("timeout", "write")])
            }
            family(
                "faultline_http_dropped_requests_total", .counter, "Requests refused or failed, by reason."
            ) {
                $0.add(server.parseErrors, labels: [("reason", "parse-error")])
                $0.add(server.queueRejections, labels: [("reason", "queue-full")])
                $0.add(server.handlerErrors, labels: [("reason", "handler-error")])
                $0.add(server.ioErrors, labels: [("reason", "io-error")])
            }
        }
        if let rss = Metrics.residentMemoryBytes() {
            family("process_resident_memory_bytes", .gauge, "Resident memory size in bytes.") { $0.add(rss) }
        }
        if let cpu = Metrics.cpuSeconds() {
            family("process_cpu_seconds_total", .counter, "Total user and system CPU time spent in seconds.")
            {
                $0.add(cpu)
            }
        }
        family(
            "process_start_time_seconds", .gauge, "Start time of the process since the Unix epoch in seconds."
        ) {
            $0.add(processStart.rounded(.down))
        }
        return families
    }
}
