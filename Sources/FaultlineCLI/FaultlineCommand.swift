// The root of the `faultline` command line: finds the subcommand, prints help and usage, and turns
// a CommandError into its message and exit status.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum FaultlineCommand {
    public static let version = "0.1.0"

    /// Every subcommand, in the order `--help` lists them.
    static let commands: [any Command.Type] = [
        DemoCommand.self,
        SketchQuantilesCommand.self,
        SketchEncodeCommand.self,
        SketchDecodeCommand.self,
        TopologyGenerateCommand.self,
        TopologyCheckCommand.self,
        TopologyPinglistCommand.self,
        RulesCheckCommand.self,
        RulesShowCommand.self,
        ReplayCommand.self,
        ExplainCommand.self,
        ReportCommand.self,
        IncidentExportCommand.self,
        IncidentImportCommand.self,
        IncidentHTMLCommand.self,
        ServeCommand.self,
        QuarantineCommand.self,
        ActionRunCommand.self,
        ExecutorRunCommand.self,
        AuditVerifyCommand.self,
        SimulateCommand.self,
        DbCheckCommand.self,
        DbMigrateCommand.self,
        DbPruneCommand.self,
        DbStatsCommand.self,
        DbImportCommand.self,
        DbExportCommand.self,
        AgentRunCommand.self,
        AgentDiscoverCommand.self,
    ]

    static var usage: String {
        "usage: faultline <command> [options]   (faultline --help lists the commands)"
    }

    static var help: String {
        let width = commands.map { $0.name.count }.max() ?? 0
        let lines = commands.map { "  \($0.name.padding(toLength: width))   \($0.summary)" }
        return """
            faultline \(version): finds the broken part of a GPU cluster's fabric.

            usage: faultline <command> [options]

            commands:
            \(lines.joined(separator: "\n"))

            Every command answers --help. Exit status: 0 success, 64 usage error, 65 bad input data,
            66 cannot open an input file, 73 cannot create an output file, 74 I/O error.

            """
    }

    /// Runs the process: parses `CommandLine.arguments` and exits with the command's status.
    public static func main() -> Never {
        exit(run(Array(CommandLine.arguments.dropFirst()), io: StandardIO()).rawValue)
    }

    /// Runs one command line (without the program name) against `io`.
    public static func run(_ arguments: [String], io: some CommandIO) -> ExitCode {
        if arguments == ["--version"] {
            io.write("faultline \(version)\n")
            return .success
        }
        // The longest command name that the arguments start with.
        let match = commands.filter { command in
            let words = command.name.split(separator: " ").map(String.init)
            return arguments.starts(with: words)
        }.max { $0.name.count < $1.name.count }

        guard let command = match else {
            if arguments.isEmpty || arguments == ["--help"] || arguments == ["-h"] || arguments == ["help"] {
                if arguments.isEmpty {
                    io.writeError(help)
                    return .usage
                }
                io.write(help)
                return .success
            }
            return groupHelpOrUnknown(arguments, io: io)
        }
        let rest = Array(arguments.dropFirst(command.name.split(separator: " ").count))
        if asksForHelp(rest) {
            io.write("usage: faultline \(command.usage)\n\n\(command.help)\n")
            return .success
        }
        do {
            try command.init(arguments: rest).run(io: io)
            return .success
        } catch {
            io.writeError("faultline \(command.name): \(error.message)\n")
            if error.showsUsage { io.writeError("usage: faultline \(command.usage)\n") }
            return error.exitCode
        }
    }

    /// `faultline sketch` (a group name alone) lists its commands; anything else is unknown.
    private static func groupHelpOrUnknown(_ arguments: [String], io: some CommandIO) -> ExitCode {
        let group = arguments[0]
        let members = commands.filter { $0.name.hasPrefix(group + " ") }
        guard !members.isEmpty else {
            io.writeError("faultline: unknown command '\(group)'\n\(usage)\n")
            return .usage
        }
        let list = members.map { "  faultline \($0.usage)" }.joined(separator: "\n")
        let wantsHelp = arguments.count == 2 && (arguments[1] == "--help" || arguments[1] == "-h")
        if wantsHelp {
            io.write("usage:\n\(list)\n")
            return .success
        }
        let what =
            arguments.count > 1 ? "unknown command '\(group) \(arguments[1])'" : "'\(group)' needs a command"
        io.writeError("faultline: \(what)\nusage:\n\(list)\n")
        return .usage
    }
}

extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
