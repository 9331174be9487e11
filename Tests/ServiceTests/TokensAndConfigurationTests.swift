// The tokens file (file:line errors that never show a token, the permission check, lookups) and the
// config file (file:line errors, flags over the file), and the Prometheus renderer's exact bytes.

import FleetModel
import Foundation
import Testing

@testable import Service

#if canImport(Glibc)
import Glibc
#endif

@Suite("tokens and configuration")
struct TokensAndConfigurationTests {
    @Test("tokens: nodes, @admin, comments and blank lines; a token names its holder; others are nil")
    func tokens() throws {
        let tokens = try Tokens(
            text:
                "# agents\n\ngpu-a1 0123456789abcdef-a1\r\n@admin 0123456789abcdef-admin\ngpu-a2\t0123456789abcdef-a2\n",
            file: "tokens")
        #expect(tokens.nodes.map(\.rawValue) == ["gpu-a1", "gpu-a2"])
        #expect(tokens.hasAdmin)
        #expect(tokens.principal(authorization: "Bearer 0123456789abcdef-a2") == .node(NodeName("gpu-a2")!))
        #expect(tokens.principal(authorization: "bearer 0123456789abcdef-admin") == .admin)
        #expect(tokens.principal(authorization: "Bearer 0123456789abcdef-a") == nil)
        #expect(tokens.principal(authorization: "Bearer 0123456789abcdef-a22") == nil)
        #expect(tokens.principal(authorization: "0123456789abcdef-a2") == nil)
        #expect(tokens.principal(authorization: nil) == nil)
        #expect(Tokens.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!Tokens.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!Tokens.constantTimeEqual([], Array("a".utf8)))
    }

    @Test(
        "tokens: each problem names file:line and never the token",
        arguments: [
            (
                "gpu-a1 0123456789abcdef-a1 extra\n",
                "tokens:1: expected '<node> <token>' or '@admin <token>', found 3 words"
            ),
            ("\n-bad 0123456789abcdef-a1\n", "tokens:2: '-bad' is not a node name or @admin"),
            ("gpu-a1 short\n", "tokens:1: the token of gpu-a1 is shorter than 16 bytes"),
            (
                "gpu-a1 0123456789abcdef-a1\ngpu-a1 0123456789abcdef-a2\n",
                "tokens:2: gpu-a1 already has a token (line 1)"
            ),
            (
                "gpu-a1 0123456789abcdef-a1\ngpu-a2 0123456789abcdef-a1\n",
                "tokens:2: the token of gpu-a2 is also another principal's token"
            ),
        ])
    func tokenErrors(text: String, message: String) {
        #expect(throws: TokensError.self) { try Tokens(text: text, file: "tokens") }
        do {
            _ = try Tokens(text: text, file: "tokens")
        } catch {
            #expect(error.description == message)
            #expect(!error.description.contains("0123456789abcdef"))
        }
    }

    @Test("tokens file readable by group or others is refused; 0600 is loaded")
    func tokensPermissions() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/tokens"
        try Data("gpu-a1 0123456789abcdef-a1\n".utf8).write(to: URL(fileURLWithPath: path))
        for mode in [0o644, 0o640, 0o604, 0o660] as [mode_t] {
            chmod(path, mode)
            do {
                _ = try Tokens.load(path: path)
                Issue.record("mode \(String(mode, radix: 8)) was accepted")
            } catch {
                #expect(error.description.contains("readable by group or others"))
                #expect(error.description.hasPrefix(path))
            }
        }
        chmod(path, 0o600)
        #expect(try Tokens.load(path: path).nodes.count == 1)
        #expect(throws: TokensError.self) { try Tokens.load(path: directory.path + "/missing") }
    }

    @Test("config file: key = value, comments; every problem as file:line; flags override the file")
    func configuration() throws {
        var configuration = ServiceConfiguration()
        try configuration.apply(
            fileText:
                "# faultline serve\ndb = /var/lib/faultline.db\nlisten = 0.0.0.0:9000\n  window-seconds=5 \n",
            file: "serve.conf")
        #expect(configuration.databasePath == "/var/lib/faultline.db")
        #expect(configuration.listen == "0.0.0.0:9000")
        #expect(configuration.windowSeconds == 5)
        try configuration.set("window-seconds", "10")
        #expect(configuration.windowSeconds == 10)
        #expect(throws: ConfigurationError.self) { try configuration.validated() }

        var broken = ServiceConfiguration()
        do {
            try broken.apply(
                fileText:
                    "db = a\nnonsense\ncolour = blue\ndb = b\nwindow-seconds = 0\nlisten = nowhere\ntokens =\n",
                file: "serve.conf")
            Issue.record("accepted")
        } catch {
            let lines = error.errors.map(\.description)
            #expect(lines.count == 6)
            #expect(lines[0] == "serve.conf:2: expected 'key = value'")
            // The known keys, sorted.
            #expect(
                lines[1]
                    == "serve.conf:3: unknown key 'colour' (known: \(ServiceConfiguration.keyNames.joined(separator: ", ")), webhook.NAME, exec.NAME)")
            #expect(lines[1].contains("(known: action, action-timeout-seconds, agent-port, db, "))
            #expect(lines[2] == "serve.conf:4: 'db' already set on line 1")
            #expect(lines[3] == "serve.conf:5: window-seconds: expected an integer in 1...3600, found '0'")
            #expect(lines[4].hasPrefix("serve.conf:6: listen: "))
            #expect(lines[5] == "serve.conf:7: 'tokens' has no value")
        }
        #expect(throws: ConfigurationError.self) { try broken.set("max-connections", "many") }
    }

    @Test("Prometheus text: HELP, TYPE, sorted families and labels, cumulative histogram buckets")
    func metricsRendering() {
        var histogram = DurationHistogram()
        histogram.observe(0.25)
        histogram.observe(0.5)
        var counter = MetricFamily("b_total", .counter, help: "B things.\nTwo lines.")
        counter.add(2, labels: [("status", "409")])
        counter.add(5, labels: [("status", "202")])
        var gauge = MetricFamily("a_gauge", .gauge, help: "A \"quoted\" label.")
        gauge.add(1.5, labels: [("name", "x\"y\\z")])
        let text = Metrics.render([counter, histogram.family("c_seconds", help: "C."), gauge])
        #expect(
            text == """
                # HELP a_gauge A "quoted" label.
                # TYPE a_gauge gauge
                a_gauge{name="x\\"y\\\\z"} 1.5
                # HELP b_total B things.\\nTwo lines.
                # TYPE b_total counter
                b_total{status="202"} 5
                b_total{status="409"} 2
                # HELP c_seconds C.
                # TYPE c_seconds histogram
                c_seconds_bucket{le="0.001"} 0
                c_seconds_bucket{le="0.005"} 0
                c_seconds_bucket{le="0.01"} 0
                c_seconds_bucket{le="0.05"} 0
                c_seconds_bucket{le="0.1"} 0
                c_seconds_bucket{le="0.25"} 1
                c_seconds_bucket{le="0.5"} 2
                c_seconds_bucket{le="1"} 2
                c_seconds_bucket{le="2.5"} 2
                c_seconds_bucket{le="5"} 2
                c_seconds_bucket{le="10"} 2
                c_seconds_bucket{le="+Inf"} 2
                c_seconds_sum 0.75
                c_seconds_count 2

                """)
    }
}

@Suite("ladder steps in the configuration")
struct EscalationConfigurationTests {
    @Test("webhook.NAME and exec.NAME name the ladder's steps; a bad one is named at its line")
    func escalationKeys() throws {
        var configuration = ServiceConfiguration()
        try configuration.apply(
            fileText: "webhook.hw-ticket = http://127.0.0.1:9000/tickets\nexec.reboot = /usr/local/sbin/reboot-node\n",
            file: "serve.conf")
        #expect(configuration.escalations == [
            "webhook:hw-ticket": "http://127.0.0.1:9000/tickets", "exec:reboot": "/usr/local/sbin/reboot-node",
        ])
        #expect(try configuration.makeEscalations().keys.sorted() == ["exec:reboot", "webhook:hw-ticket"])
        var bad = ServiceConfiguration()
        #expect(throws: InvalidConfiguration.self) {
            try bad.apply(fileText: "webhook.x = https://tickets.example\n", file: "serve.conf")
        }
        #expect(throws: InvalidConfiguration.self) { try bad.apply(fileText: "webhook. = http://x\n", file: "serve.conf") }
    }
}
