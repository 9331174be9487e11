// The command-line framework, written by hand: commands as types, a small option parser, sysexits
// exit codes, and the process's standard streams behind a protocol that tests replace.

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#elseif canImport(Darwin)
import Darwin
#endif

import FleetModel

/// Exit statuses, after BSD's sysexits.h.
public enum ExitCode: Int32, Sendable {
    case success = 0
    /// A comparison found differences (`replay --compare`), as diff(1) exits.
    case differences = 1
    /// The command line was wrong: unknown command or option, bad option value.
    case usage = 64
    /// The input data was wrong: a bad number, malformed base64 or protobuf, an invalid topology.
    case dataError = 65
    /// An input file could not be opened.
    case noInput = 66
    /// An output file could not be created.
    case cannotCreate = 73
    /// Reading or writing failed.
    case ioError = 74
}

/// Why a command stopped: the status to exit with and what to tell the user.
public struct CommandError: Error, Sendable {
    public let exitCode: ExitCode
    public let message: String
    /// Print the command's usage line after the message (for command-line mistakes).
    public let showsUsage: Bool

    public static func usage(_ message: String) -> CommandError {
        CommandError(exitCode: .usage, message: message, showsUsage: true)
    }

    public static func data(_ message: String) -> CommandError {
        CommandError(exitCode: .dataError, message: message, showsUsage: false)
    }

    public static func differences(_ message: String) -> CommandError {
        CommandError(exitCode: .differences, message: message, showsUsage: false)
    }

    public static func io(_ message: String) -> CommandError {
        CommandError(exitCode: .ioError, message: message, showsUsage: false)
    }

    public static func noInput(_ message: String) -> CommandError {
        CommandError(exitCode: .noInput, message: message, showsUsage: false)
    }

    public static func cannotCreate(_ message: String) -> CommandError {
        CommandError(exitCode: .cannotCreate, message: message, showsUsage: false)
    }
}

/// Standard input and output as commands see them.
public protocol CommandIO: AnyObject {
    /// Reads standard input into `buffer` from `offset` on (at most to its end); returns how many
    /// bytes it read, 0 at the end of input.
    func readInput(into buffer: inout [UInt8], at offset: Int) throws(CommandError) -> Int
    func write(_ text: String)
    func writeError(_ text: String)
}

/// The process's real file descriptors 0, 1 and 2.
public final class StandardIO: CommandIO {
    public init() {}

    public func readInput(into buffer: inout [UInt8], at offset: Int) throws(CommandError) -> Int {
        precondition(offset < buffer.count, "no room to read into")
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in
                read(STDIN_FILENO, raw.baseAddress! + offset, raw.count - offset)
            }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw CommandError.io("read(stdin): \(String(cString: strerror(errno)))")
        }
    }

    public func write(_ text: String) { Self.writeAll(STDOUT_FILENO, text) }
    public func writeError(_ text: String) { Self.writeAll(STDERR_FILENO, text) }

    private static func writeAll(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = systemWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return  // stdout closed (a pipe's reader left): nothing more to say
                }
                offset += n
            }
        }
    }
}

/// write(2), named apart from `CommandIO.write`.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, bytes, count)
}

/// A subcommand: its options are its stored properties, parsed and validated in `init`.
public protocol Command: Sendable {
    /// The words that invoke it, e.g. "sketch quantiles".
    static var name: String { get }
    /// One line for the parent's command list.
    static var summary: String { get }
    /// The usage line, without the leading "usage: faultline ".
    static var usage: String { get }
    /// Everything `--help` prints after the usage line.
    static var help: String { get }

    /// Parses and validates the arguments that follow the command's name.
    init(arguments: [String]) throws(CommandError)
    func run(io: some CommandIO) throws(CommandError)
}

/// Parses `--name value`, `--name=value`, `--flag` and short aliases (`-o FILE`), and up to
/// `positionals` plain arguments; rejects anything else.
struct OptionParser {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []
    /// Plain arguments, in order.
    private(set) var positionals: [String] = []

    /// - Parameters:
    ///   - valued: options that take a value, without the dashes.
    ///   - flags: options that take none, without the dashes.
    ///   - aliases: one-letter short forms, e.g. `["o": "output"]`.
    ///   - positionals: how many plain arguments the command takes.
    init(
        _ arguments: [String], valued: [String], flags knownFlags: [String] = [],
        aliases: [String: String] = [:],
        positionals maxPositionals: Int = 0
    ) throws(CommandError) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            var name: String
            if argument.hasPrefix("--"), argument.count > 2 {
                name = String(argument.dropFirst(2))
            } else if argument.count == 2, argument.hasPrefix("-"),
                let long = aliases[String(argument.dropFirst())]
            {
                name = long
            } else if !argument.hasPrefix("-") || argument == "-", positionals.count < maxPositionals {
                positionals.append(argument)
                continue
            } else {
                throw CommandError.usage("unexpected argument '\(argument)'")
            }
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if valued.contains(name) {
                guard values[name] == nil else { throw CommandError.usage("option '--\(name)' given twice") }
                if let inlineValue {
                    values[name] = inlineValue
                } else {
                    guard index < arguments.count else {
                        throw CommandError.usage("option '--\(name)' needs a value")
                    }
                    values[name] = arguments[index]
                    index += 1
                }
            } else if knownFlags.contains(name), inlineValue == nil {
                guard flags.insert(name).inserted else {
                    throw CommandError.usage("option '--\(name)' given twice")
                }
            } else if knownFlags.contains(name) {
                throw CommandError.usage("option '--\(name)' takes no value")
            } else {
                throw CommandError.usage("unknown option '--\(name)'")
            }
        }
    }

    func value(_ name: String) -> String? { values[name] }

    /// The value of an option the command cannot do without.
    func required(_ name: String) throws(CommandError) -> String {
        guard let value = values[name] else { throw CommandError.usage("--\(name) is required") }
        return value
    }
    func flag(_ name: String) -> Bool { flags.contains(name) }

    /// A time option (RFC 3339 UTC), nil when not given.
    func timestamp(_ name: String) throws(CommandError) -> Timestamp? {
        guard let text = values[name] else { return nil }
        guard let time = Timestamp(rfc3339: text) else {
            throw CommandError.usage("--\(name) must be RFC 3339 UTC like 2026-11-21T10:00:00Z, got '\(text)'")
        }
        return time
    }

    /// A number option, validated by `isValid` (described by `expectation` in the error).
    func double(
        _ name: String, default defaultValue: Double, _ expectation: String, isValid: (Double) -> Bool
    ) throws(CommandError) -> Double {
        guard let text = values[name] else { return defaultValue }
        guard let value = Double(text), value.isFinite, isValid(value) else {
            throw CommandError.usage("--\(name) must be \(expectation), got '\(text)'")
        }
        return value
    }

    /// An integer option within `range`.
    func integer(
        _ name: String, default defaultValue: Int, in range: ClosedRange<Int>
    ) throws(CommandError) -> Int {
        guard let text = values[name] else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw CommandError.usage(
                "--\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }
}

/// True when the arguments ask for help anywhere (`--help` or `-h`).
func asksForHelp(_ arguments: [String]) -> Bool {
    arguments.contains("--help") || arguments.contains("-h")
}
