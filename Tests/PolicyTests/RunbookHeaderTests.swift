// Runbook header blocks: every committed runbook's parses; each mistake is named at its line.

import Engine
import Foundation
import Testing

@testable import Policy

struct RunbookHeaderTests {
    static let runbooks = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("runbooks")

    @Test(arguments: faultClasses)
    func everyCommittedRunbookHasAValidHeader(faultClass: String) throws {
        let file = Self.runbooks.appendingPathComponent("\(faultClass).md")
        let header = try RunbookHeader.parse(String(contentsOf: file, encoding: .utf8), file: "runbooks/\(faultClass).md")
        #expect(header.faultClass == faultClass)
        #expect(!header.ladder.isEmpty)
        // Switches are never drained: their ladders notify.
        #expect(header.ladder[0].action == (faultClass.hasPrefix("switch.") ? "notify" : "quarantine"))
    }

    @Test func aLadderWithDelaysReadsInOrder() throws {
        let header = try RunbookHeader.parse(
            "<!-- faultline\nseverity: high\nladder: quarantine; webhook:hw-ticket after 30m; exec:reboot after 2h\nrelease: manual\n-->\n# x\n",
            file: "runbooks/gpu.down.md")
        #expect(header.ladder == [
            .init(action: "quarantine", afterSeconds: 0), .init(action: "webhook:hw-ticket", afterSeconds: 1800),
            .init(action: "exec:reboot", afterSeconds: 7200),
        ])
        #expect(header.release == .manual && header.severity == .high)
    }

    @Test(arguments: [
        ("# no header\n", "x.md:1: no header block"),
        ("<!-- faultline\nseverity: high\n", "x.md:1: the header block is not closed"),
        ("<!-- faultline\nseverity: hi\nladder: quarantine\nrelease: auto\n-->\n", "x.md:2: severity must be"),
        ("<!-- faultline\nseverity: low\nladder: drain\nrelease: auto\n-->\n", "x.md:3: a ladder step must be"),
        ("<!-- faultline\nseverity: low\nladder: notify; quarantine after 1w\nrelease: auto\n-->\n", "x.md:3: 'quarantine after 1w'"),
        ("<!-- faultline\nseverity: low\nladder: notify after 1h; quarantine\nrelease: auto\n-->\n", "x.md:3: ladder steps must come in order"),
        ("<!-- faultline\nseverity: low\nladder: notify\nrelease: later\n-->\n", "x.md:4: release must be auto or manual"),
        ("<!-- faultline\nseverity: low\nseverity: high\nladder: notify\nrelease: auto\n-->\n", "x.md:3: severity is set twice"),
        ("<!-- faultline\nseverity: low\nladder: notify\ncolour: red\nrelease: auto\n-->\n", "x.md:4: unknown key 'colour'"),
        ("<!-- faultline\nseverity: low\nladder: notify\n-->\n", "x.md:4: the header block has no release"),
    ])
    func mistakesAreNamedAtTheirLine(text: String, expected: String) {
        do {
            _ = try RunbookHeader.parse(text, file: "x.md")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.errors.contains { $0.description.hasPrefix(expected) }, "\(error.errors)")
        }
    }
}
