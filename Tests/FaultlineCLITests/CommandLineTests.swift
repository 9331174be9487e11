// The command line in process: usage errors (64) with usage lines, --help everywhere, groups, --version.

import Testing

@testable import FaultlineCLI

@Suite("command line")
struct CommandLineTests {
    struct Misuse: Sendable, CustomTestStringConvertible {
        let args: [String]
        /// Part of the message that says what is wrong.
        let complaint: String
        var testDescription: String { args.joined(separator: " ") }
    }

    static let misuses: [Misuse] = [
        Misuse(args: ["sketch", "quantiles", "--bogus"], complaint: "unknown option '--bogus'"),
        Misuse(args: ["sketch", "quantiles", "-q", "0.5"], complaint: "unexpected argument '-q'"),
        Misuse(args: ["sketch", "quantiles", "extra"], complaint: "unexpected argument 'extra'"),
        Misuse(args: ["sketch", "quantiles", "--"], complaint: "unexpected argument '--'"),
        Misuse(args: ["sketch", "quantiles", "--q", "1.5"], complaint: "'1.5'"),
        Misuse(args: ["sketch", "quantiles", "--q", "-0.1"], complaint: "'-0.1'"),
        Misuse(args: ["sketch", "quantiles", "--q", "abc"], complaint: "'abc'"),
        Misuse(args: ["sketch", "quantiles", "--q", "nan"], complaint: "'nan'"),
        Misuse(args: ["sketch", "quantiles", "--q", "0.5,,0.9"], complaint: "''"),
        Misuse(args: ["sketch", "quantiles", "--q", ""], complaint: "''"),
        Misuse(args: ["sketch", "quantiles", "--q", "0.5,0.5"], complaint: "twice"),
        Misuse(args: ["sketch", "quantiles", "--q"], complaint: "needs a value"),
        Misuse(args: ["sketch", "quantiles", "--accuracy", "0"], complaint: "--accuracy"),
        Misuse(args: ["sketch", "quantiles", "--accuracy", "1"], complaint: "--accuracy"),
        Misuse(args: ["sketch", "quantiles", "--accuracy", "-0.01"], complaint: "--accuracy"),
        Misuse(args: ["sketch", "quantiles", "--accuracy", "1e-12"], complaint: "at least about 3.6e-7"),
        Misuse(args: ["sketch", "quantiles", "--accuracy", "inf"], complaint: "--accuracy"),
        Misuse(args: ["sketch", "quantiles", "--accuracy=abc"], complaint: "--accuracy"),
        Misuse(args: ["sketch", "quantiles", "--q", "0.5", "--q", "0.9"], complaint: "'--q' given twice"),
        Misuse(args: ["sketch", "quantiles", "--q=0.5", "--q", "0.9"], complaint: "'--q' given twice"),
        Misuse(
            args: ["sketch", "quantiles", "--accuracy", "0.01", "--accuracy=0.02"],
            complaint: "'--accuracy' given twice"),
        Misuse(args: ["sketch", "quantiles", "--json=yes"], complaint: "takes no value"),
        Misuse(args: ["sketch", "quantiles", "--json", "--json"], complaint: "'--json' given twice"),
        Misuse(args: ["sketch", "quantiles", "--q", "0x1p-1"], complaint: "'0x1p-1'"),
        Misuse(args: ["sketch", "encode", "--json"], complaint: "unknown option '--json'"),
        Misuse(args: ["sketch", "encode", "--accuracy", "0"], complaint: "--accuracy"),
        Misuse(args: ["sketch", "decode", "--accuracy", "0.01"], complaint: "unknown option '--accuracy'"),
        Misuse(args: ["sketch", "decode", "--q", "2"], complaint: "'2'"),
        Misuse(args: ["demo", "--nodes", "7"], complaint: "--nodes"),
        Misuse(args: ["demo", "--nodes", "abc"], complaint: "--nodes"),
        Misuse(args: ["demo", "--rails", "9"], complaint: "--rails"),
        Misuse(args: ["demo", "--window-seconds", "0"], complaint: "--window-seconds"),
        Misuse(args: ["demo", "--samples", "500"], complaint: "--samples"),
        Misuse(args: ["demo", "--nodes", "8", "--nodes", "9"], complaint: "given twice"),
    ]

    @Test("a wrong command line exits 64 with the message and the command's usage line", arguments: misuses)
    func usageError(misuse: Misuse) throws {
        // Input that would succeed, so that only the command line can be at fault.
        let (status, out, err) = run(misuse.args, stdin: "1\n2\n3\n")
        #expect(status == .usage)
        #expect(out == "")
        let command = try #require(
            FaultlineCommand.commands.first {
                misuse.args.starts(with: $0.name.split(separator: " ").map(String.init))
            })
        #expect(err.hasPrefix("faultline \(command.name): "), "\(err)")
        #expect(err.contains(misuse.complaint), "\(err)")
        #expect(err.hasSuffix("\nusage: faultline \(command.usage)\n"), "\(err)")
    }

    @Test("an unknown option names the usage line of sketch quantiles")
    func unknownOptionShowsUsage() {
        let (status, _, err) = run(["sketch", "quantiles", "--percentile", "99"], stdin: "1\n")
        #expect(status == .usage)
        #expect(err.contains("usage: faultline sketch quantiles"))
    }

    @Test(
        "every command answers --help and -h on stdout with its usage line, exit 0",
        arguments: FaultlineCommand.commands.map { $0.name }, ["--help", "-h"])
    func commandHelp(name: String, flag: String) throws {
        let command = try #require(FaultlineCommand.commands.first { $0.name == name })
        let words = name.split(separator: " ").map(String.init)
        // Help wins over anything else on the line, even options that would be wrong.
        for args in [words + [flag], words + ["--bogus", flag]] {
            let (status, out, err) = run(args, stdin: "not read")
            #expect(status == .success)
            #expect(err == "")
            #expect(out.hasPrefix("usage: faultline \(command.usage)\n"), "\(out)")
            #expect(out.contains(command.help))
        }
    }

    @Test("faultline --help lists every command with its summary; no arguments is a usage error")
    func rootHelp() {
        let help = run(["--help"])
        #expect(help.0 == .success)
        #expect(help.err == "")
        for command in FaultlineCommand.commands {
            #expect(help.out.contains(command.name), "\(command.name) is listed")
            #expect(help.out.contains(command.summary))
        }
        #expect(run(["-h"]).out == help.out)
        #expect(run(["help"]).out == help.out)

        let bare = run([])
        #expect(bare.0 == .usage)
        #expect(bare.out == "")
        #expect(bare.err.contains("usage: faultline"))
        #expect(FaultlineCommand.commands.allSatisfy { bare.err.contains($0.name) })
    }

    @Test(
        "an unknown command exits 64 with the general usage line",
        arguments: [["nosuch"], ["nosuch", "--help"]])
    func unknownCommand(args: [String]) {
        let (status, out, err) = run(args)
        #expect(status == .usage)
        #expect(out == "")
        #expect(err.contains("unknown command 'nosuch'"))
        #expect(err.contains("usage: faultline <command>"))
    }

    static var sketchCommands: [any Command.Type] {
        FaultlineCommand.commands.filter { $0.name.hasPrefix("sketch ") }
    }

    @Test("faultline sketch alone exits 64 and lists the sketch commands")
    func groupAlone() {
        #expect(
            Set(Self.sketchCommands.map { $0.name }) == [
                "sketch quantiles", "sketch encode", "sketch decode",
            ])
        let (status, out, err) = run(["sketch"])
        #expect(status == .usage)
        #expect(out == "")
        #expect(err.contains("'sketch' needs a command"))
        for command in Self.sketchCommands {
            #expect(err.contains("faultline \(command.usage)"))
        }
        #expect(!err.contains("faultline \(DemoCommand.usage)"))
    }

    @Test("faultline sketch nosuch exits 64 and lists the sketch commands")
    func groupUnknownMember() {
        let (status, out, err) = run(["sketch", "nosuch"])
        #expect(status == .usage)
        #expect(out == "")
        #expect(err.contains("unknown command 'sketch nosuch'"))
        for command in Self.sketchCommands {
            #expect(err.contains("faultline \(command.usage)"))
        }
    }

    @Test("faultline sketch --help lists the sketch commands on stdout, exit 0", arguments: ["--help", "-h"])
    func groupHelp(flag: String) {
        let (status, out, err) = run(["sketch", flag])
        #expect(status == .success)
        #expect(err == "")
        for command in Self.sketchCommands {
            #expect(out.contains("faultline \(command.usage)"))
        }
    }

    @Test("--version prints the version, exit 0")
    func version() {
        let (status, out, err) = run(["--version"])
        #expect(status == .success)
        #expect(err == "")
        #expect(out == "faultline \(FaultlineCommand.version)\n")
        let parts = FaultlineCommand.version.split(separator: ".")
        #expect(parts.count == 3 && parts.allSatisfy { Int($0) != nil }, "a semantic version")
        let (extraStatus, extraOut, _) = run(["--version", "extra"])
        #expect(extraStatus == .usage)
        #expect(extraOut == "")
    }
}
