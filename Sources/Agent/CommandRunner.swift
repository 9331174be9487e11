// Running a helper command (nvidia-smi) from the agent: found on PATH, spawned with posix_spawn,
// its standard output read with a byte limit and a deadline (past it the command is killed), its
// exit status kept. Behind `CommandRunner` so that tests hand the health collector canned output.

import Glibc

/// Why a command gave no usable output; each case names the command.
public enum CommandFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// Not on PATH: normal where the tool is not installed.
    case notFound(command: String)
    case spawnFailed(command: String, errno: Int32)
    /// Killed at its deadline.
    case timedOut(command: String, seconds: Double)
    /// More standard output than the limit; killed.
    case outputTooLarge(command: String, limit: Int)

    public var description: String {
        switch self {
        case .notFound(let command): "\(command): not found on PATH"
        case .spawnFailed(let command, let code):
            "\(command): posix_spawn: \(String(cString: strerror(code)))"
        case .timedOut(let command, let seconds): "\(command): no answer within \(seconds) s, killed"
        case .outputTooLarge(let command, let limit): "\(command): output over \(limit) bytes, killed"
        }
    }
}

/// What a command wrote and how it ended.
public struct CommandOutput: Hashable, Sendable {
    public var standardOutput: String
    /// The exit status, or 128 + the signal that ended it.
    public var status: Int32

    public init(standardOutput: String, status: Int32 = 0) {
        self.standardOutput = standardOutput
        self.status = status
    }
}

/// Runs commands to completion within a deadline.
public protocol CommandRunner: Sendable {
    /// Runs `command` (a name looked up on PATH) with `arguments`.
    func run(
        _ command: String, _ arguments: [String], timeoutSeconds: Double
    ) throws(CommandFailure)
        -> CommandOutput
}

/// The real runner. Standard input and error are /dev/null; the environment is only PATH and
/// `LC_ALL=C`, so output is in the C locale.
public struct SystemCommandRunner: CommandRunner {
    /// The most standard output kept; more kills the command.
    public var outputLimit = 64 << 10
    public var searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public init() {}

    /// The first executable `command` on `searchPath`, or nil.
    public func locate(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        for directory in searchPath.split(separator: ":") {
            let candidate = "\(directory)/\(command)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    public func run(
        _ command: String, _ arguments: [String], timeoutSeconds: Double
    ) throws(CommandFailure)
        -> CommandOutput
    {
        guard let executable = locate(command) else { throw .notFound(command: command) }
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else { throw .spawnFailed(command: command, errno: errno) }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        // Neither end leaks into other children; the child's stdout is a dup2 copy, not inherited.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        defer { close(readEnd) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = ([executable] + arguments).map { strdup($0) }
        let environmentText: [String] = ["PATH=\(searchPath)", "LC_ALL=C"]
        let environment = environmentText.map { strdup($0) }
        defer {
            argv.forEach { free($0) }
            environment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv + [nil], environment + [nil])
        close(writeEnd)
        guard spawned == 0 else { throw .spawnFailed(command: command, errno: spawned) }

        let deadline = monotonicSeconds() + timeoutSeconds
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var failure: CommandFailure?
        reading: while true {
            let left = deadline - monotonicSeconds()
            guard left > 0 else {
                failure = .timedOut(command: command, seconds: timeoutSeconds)
                break
            }
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(left * 1000, 60_000).rounded(.up)))
            if ready < 0, errno == EINTR { continue }
            if ready <= 0 { continue }  // timed out this round: the deadline check ends it
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            switch count {
            case ..<0 where errno == EINTR: continue
            case ...0: break reading  // end of output (or a read error: the status tells)
            default:
                output += buffer[..<count]
                if output.count > outputLimit {
                    failure = .outputTooLarge(command: command, limit: outputLimit)
                    break reading
                }
            }
        }
        // A command that closed its output may still be running: it gets until the deadline too.
        var status: Int32 = 0
        while failure == nil {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid || (waited < 0 && errno != EINTR) { break }
            if monotonicSeconds() >= deadline {
                failure = .timedOut(command: command, seconds: timeoutSeconds)
            } else {
                usleep(2_000)
            }
        }
        if let failure {
            kill(pid, SIGKILL)
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            throw failure
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return CommandOutput(standardOutput: String(decoding: output, as: UTF8.self), status: exitStatus)
    }

    private func monotonicSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
