// The read side through the router: findings (the live stream equals replay's, byte for byte, also
// across a restart that rebuilds the engine from the store), nodes, components, pinglists, health
// and readiness, who may read what, and /metrics in Prometheus text.

import Engine
import FleetModel
import Foundation
import Net
import Simulation
import Store
import Testing

@testable import Service

@Suite("the service's API")
struct APITests {
    @Test("the live findings stream equals replay's over the same reports, byte for byte")
    func findingsEqualReplay() throws {
        let fixture = try ServiceFixture()
        let windows = fixture.simulator.scenario.windows
        for window in 0..<windows { fixture.feed(window: window) }
        fixture.finish()
        let all = fixture.call("GET", "/v1/findings?state=all", headers: bearer(adminToken))
        #expect(all.status == 200)
        #expect(all.headers["Content-Type"] == "application/x-ndjson")
        let lines = text(all).split(separator: "\n").map(String.init)
        let expected = replayedFindings(fixture.simulator, windows: 0..<windows)
        #expect(!expected.isEmpty)
        #expect(lines == expected)
    }

    @Test("a restart rebuilds the engine from the store: findings resume exactly as without it")
    func restartResumes() throws {
        let fixture = try ServiceFixture()
        let windows = fixture.simulator.scenario.windows
        for window in 0..<4 { fixture.feed(window: window) }
        let openBefore = fixture.call("GET", "/v1/findings", headers: bearer(adminToken))
        try fixture.restart()
        let openAfter = fixture.call("GET", "/v1/findings", headers: bearer(adminToken))
        #expect(text(openAfter) == text(openBefore))
        for window in 4..<windows { fixture.feed(window: window) }
        fixture.finish()
        let all = fixture.call("GET", "/v1/findings?state=all", headers: bearer(adminToken))
        #expect(
            text(all).split(separator: "\n").map(String.init)
                == replayedFindings(fixture.simulator, windows: 0..<windows))
    }

    @Test("open findings, since, and a bad state or since is 400 naming the query parameter")
    func findingsQueries() throws {
        let fixture = try ServiceFixture()
        for window in 0..<5 { fixture.feed(window: window) }
        let open = fixture.call("GET", "/v1/findings?state=open", headers: bearer(adminToken))
        let lines = text(open).split(separator: "\n")
        #expect(!lines.isEmpty)
        #expect(lines.allSatisfy { !$0.contains("\"event\": \"closed\"") })
        let since = fixture.simulator.windowStart(3)
        let later = fixture.call("GET", "/v1/findings?state=all&since=\(since)", headers: bearer(adminToken))
        for line in text(later).split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(
                (object?["window"] as? String).flatMap(Timestamp.init(rfc3339:)).map { $0 >= since } == true)
        }
        let badState = fixture.call("GET", "/v1/findings?state=closed", headers: bearer(adminToken))
        #expect(badState.status == 400)
        #expect(try object(badState)["field"] as? String == "query.state")
        let badSince = fixture.call("GET", "/v1/findings?since=yesterday", headers: bearer(adminToken))
        #expect(try object(badSince)["field"] as? String == "query.since")
    }

    @Test("operator endpoints: 401 without a token, 403 with a node's token, 200 with the admin token")
    func operatorAuth() throws {
        let fixture = try ServiceFixture()
        for target in ["/v1/findings", "/v1/nodes", "/v1/components/gpu-0001"] {
            #expect(fixture.call("GET", target).status == 401, "\(target)")
            #expect(
                fixture.call("GET", target, headers: bearer(nodeToken("gpu-0001"))).status == 403, "\(target)"
            )
            #expect(fixture.call("GET", target, headers: bearer(adminToken)).status == 200, "\(target)")
        }
    }

    @Test("nodes: unknown before a report, healthy after, suspect with an open finding, silent when quiet")
    func nodes() throws {
        let fixture = try ServiceFixture()
        let before = try object(fixture.call("GET", "/v1/nodes", headers: bearer(adminToken)))
        let first = try #require((before["nodes"] as? [[String: Any]])?.first)
        #expect(first["state"] as? String == "unknown")
        for window in 0..<5 { fixture.feed(window: window) }
        let during = try object(fixture.call("GET", "/v1/nodes", headers: bearer(adminToken)))
        let nodes = try #require(during["nodes"] as? [[String: Any]])
        #expect(nodes.count == 16)
        #expect(
            nodes.map { $0["node"] as? String }
                == fixture.simulator.topology.nodes.map { $0.name.rawValue }.sorted())
        let states = Dictionary(
            uniqueKeysWithValues: nodes.map { ($0["node"] as! String, $0["state"] as! String) })
        #expect(states["gpu-0011"] == "suspect", "\(states)")
        #expect(states["gpu-0000"] == "healthy")
        #expect(nodes.first?["lastReportWindow"] as? String == fixture.simulator.windowStart(4).description)
        fixture.clock.set(fixture.simulator.windowStart(20))
        let quiet = try object(fixture.call("GET", "/v1/nodes", headers: bearer(adminToken)))
        #expect((quiet["nodes"] as? [[String: Any]])?.first?["state"] as? String == "silent")
        // Node states were recorded in the store at window closes.
        let store = try Store(path: fixture.databasePath, mode: .existing, migrate: false)
        #expect(try store.nodeStates().count == 16)
    }

    @Test("components: an endpoint's findings and pairs; a link; an unknown id is 404")
    func components() throws {
        let fixture = try ServiceFixture()
        for window in 0..<5 { fixture.feed(window: window) }
        let endpoint = try object(
            fixture.call("GET", "/v1/components/gpu-0011%2F2", headers: bearer(adminToken)))
        #expect(endpoint["kind"] as? String == "gpu")
        #expect(endpoint["state"] as? String == "faulty")
        #expect(((endpoint["findings"] as? [Any])?.count ?? 0) > 0)
        let pairs = try #require(endpoint["pairs"] as? [[String: Any]])
        #expect(!pairs.isEmpty)
        #expect(
            pairs.allSatisfy {
                ($0["src"] as? String) == "gpu-0011/2" || ($0["dst"] as? String) == "gpu-0011/2"
            })
        #expect(pairs.contains { $0["p50Micros"] is Double || $0["p50Micros"] is Int })
        // The pair statistics of the spec: p50 ≤ p90 ≤ p99 ≤ p99.9 and the samples, for pairs with any.
        for pair in pairs where (pair["sent"] as? Int ?? 0) > (pair["lost"] as? Int ?? 0) {
            let quantiles = ["p50Micros", "p90Micros", "p99Micros", "p999Micros"].map { (pair[$0] as? NSNumber)?.doubleValue }
            #expect(quantiles.allSatisfy { $0 != nil } && quantiles.map { $0! } == quantiles.map { $0! }.sorted())
            #expect(pair["samples"] as? Int == (pair["sent"] as? Int ?? 0) - (pair["lost"] as? Int ?? 0))
        }
        let link = fixture.call("GET", "/v1/components/leaf-s1-r3~spine-00", headers: bearer(adminToken))
        #expect(link.status == 200)
        #expect(try object(link)["kind"] as? String == "link")
        let unknown = fixture.call("GET", "/v1/components/nothing-here", headers: bearer(adminToken))
        #expect(unknown.status == 404)
    }

    @Test("pinglist: the node's own token or the admin's; another node's token is 403; unknown node 404")
    func pinglist() throws {
        let fixture = try ServiceFixture()
        let own = fixture.call("GET", "/v1/pinglist/gpu-0003", headers: bearer(nodeToken("gpu-0003")))
        #expect(own.status == 200)
        let body = try object(own)
        #expect(body["node"] as? String == "gpu-0003")
        let pairs = try #require(body["pairs"] as? [[String: Any]])
        let planned = fixture.correlator.pinglist.pairs(from: NodeName("gpu-0003")!)
        #expect(pairs.count == planned.count)
        #expect(pairs.map { $0["dst"] as? String } == planned.map { $0.dst.description })
        #expect(fixture.call("GET", "/v1/pinglist/gpu-0003", headers: bearer(adminToken)).status == 200)
        #expect(
            fixture.call("GET", "/v1/pinglist/gpu-0003", headers: bearer(nodeToken("gpu-0004"))).status == 403
        )
        #expect(fixture.call("GET", "/v1/pinglist/gpu-0003").status == 401)
        #expect(fixture.call("GET", "/v1/pinglist/gpu-9999", headers: bearer(adminToken)).status == 404)
        #expect(body["addresses"] == nil, "no agent port configured: no addresses")
    }

    @Test("pinglist addresses: each peer rail's topology address with the agent port, IPv6 bracketed")
    func pinglistAddresses() throws {
        let topology = try Topology(
            json: Data(
                #"""
                {"version": 1,
                 "nodes": [
                   {"name": "a", "rails": [{"rail": 0, "leaf": "l0", "address": "10.0.0.1"}]},
                   {"name": "b", "rails": [{"rail": 0, "leaf": "l0", "address": "10.0.0.2"},
                                           {"rail": 1, "leaf": "l1", "address": "fd00::2"}]},
                   {"name": "c", "rails": [{"rail": 0, "leaf": "l0"}]},
                   {"name": "d", "rails": [{"rail": 0, "leaf": "l0", "address": "d-ib0"}]}],
                 "switches": [{"name": "l0", "tier": "leaf"}, {"name": "l1", "tier": "leaf"}],
                 "links": [{"id": "a/0~l0", "a": "a/0", "b": "l0"}, {"id": "b/0~l0", "a": "b/0", "b": "l0"},
                           {"id": "b/1~l1", "a": "b/1", "b": "l1"}, {"id": "c/0~l0", "a": "c/0", "b": "l0"},
                           {"id": "d/0~l0", "a": "d/0", "b": "l0"}]}
                """#.utf8))
        let destinations = ["a/0", "b/0", "b/1", "c/0", "d/0"].compactMap { EndpointID($0) }
        let addresses = ServiceAPI.peerAddresses(
            of: NodeName("a")!, destinations: destinations, in: topology, port: 7400)
        // a's own rail is answered by a itself; c/0 has no address in the topology, d/0 a name the
        // agent could not use (it would refuse the whole pinglist): both left out.
        #expect(addresses == ["b/0": .string("10.0.0.2:7400"), "b/1": .string("[fd00::2]:7400")])
    }

    @Test("healthz is 200; readyz is 200 while the ticker runs, 503 when it fell behind or the store closed")
    func healthAndReadiness() throws {
        let fixture = try ServiceFixture()
        #expect(fixture.call("GET", "/healthz").status == 200)
        #expect(fixture.call("GET", "/readyz").status == 200)
        fixture.clock.advance(seconds: 3600)
        #expect(fixture.call("GET", "/readyz").status == 503)
        fixture.correlator.tick()
        #expect(fixture.call("GET", "/readyz").status == 200)
        fixture.correlator.close()
        #expect(fixture.call("GET", "/readyz").status == 503)
    }

    @Test("/metrics: HELP and TYPE for every family, sorted families, the counts of what happened")
    func metrics() throws {
        let fixture = try ServiceFixture()
        for window in 0..<5 { fixture.feed(window: window) }
        _ = fixture.post([], token: nil)
        let response = fixture.call("GET", "/metrics")
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8")
        let body = text(response)
        let reports = (0..<5).map { fixture.simulator.reports(window: $0).count }.reduce(0, +)
        #expect(body.contains("faultline_report_requests_total{status=\"202\"} \(reports)\n"))
        #expect(body.contains("faultline_report_requests_total{status=\"401\"} 1\n"))
        #expect(body.contains("faultline_reports_total{outcome=\"stored\"} \(reports)\n"))
        #expect(body.contains("faultline_window_close_seconds_bucket{le=\"+Inf\"}"))
        #expect(body.contains("faultline_open_findings{kind=\"gpu\",class="))
        #expect(body.contains("process_resident_memory_bytes "))
        #expect(body.contains("process_cpu_seconds_total "))
        // Every sample belongs to the family whose HELP and TYPE came just before; families sorted.
        var families: [String] = []
        var current: String?
        for line in body.split(separator: "\n") {
            if line.hasPrefix("# HELP ") {
                let name = String(line.split(separator: " ")[2])
                families.append(name)
                current = name
            } else if line.hasPrefix("# TYPE ") {
                #expect(String(line.split(separator: " ")[2]) == current)
            } else {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                let family = try #require(current)
                #expect(
                    name == family || name == family + "_bucket" || name == family + "_sum"
                        || name == family + "_count",
                    "\(line)")
            }
        }
        #expect(families == families.sorted())
        #expect(Set(families).count == families.count)
    }

    @Test("reload: new tokens take effect at once; new rules rebuild the engine from the store")
    func reload() throws {
        let fixture = try ServiceFixture()
        for window in 0..<4 { fixture.feed(window: window) }
        let openBefore = text(fixture.call("GET", "/v1/findings", headers: bearer(adminToken)))
        var inputs = fixture.inputs
        inputs.tokens = try Tokens(
            text: "@admin \(adminToken)\ngpu-0000 a-brand-new-token-0000\n", file: "tokens")
        try fixture.correlator.reload(inputs)
        let report = fixture.simulator.reports(window: 4)[0]
        #expect(report.node.rawValue == "gpu-0000")
        #expect(fixture.post(report).status == 401)
        #expect(fixture.post(report, token: "a-brand-new-token-0000").status == 202)
        inputs.rules.graceWindows += 1
        try fixture.correlator.reload(inputs)
        #expect(text(fixture.call("GET", "/v1/findings", headers: bearer(adminToken))) == openBefore)
        let store = try Store(path: fixture.databasePath, mode: .existing, migrate: false)
        let rules = try #require(try store.configuration(.rules, at: fixture.clock.now()))
        #expect(rules.text == inputs.rules.canonicalText)
    }
}
