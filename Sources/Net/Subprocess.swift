// Running a program: posix_spawn with its own process group, standard output and error captured up
// to a limit, a deadline after which the whole group is killed, and the exit status. What the
// remediation actions (scontrol, scripts) and the agent's host tools run through, behind the
// `CommandRunner` protocol so that tests run on a fake. No shell: arguments go to the program as
// they are.

@preconcurrency import Glibc
import Synchronization

/// What a finished (or killed) program left.
public struct CommandResult: Sendable, Equatable {
    /// The exit status, or nil when a signal ended it (the timeout's SIGKILL included).
    public var exitStatus: Int32?
    public var signal: Int32?
    public var standardOutput: String
    public var standardError: String
    /// Killed at the deadline.
    public var timedOut: Bool
    /// Output beyond the limit was dropped.
    public var truncated: Bool

    public init(
        exitStatus: Int32?, signal: Int32? = nil, standardOutput: String, standardError: String = "",
        timedOut: Bool = false, truncated: Bool = false
    ) {
        self.exitStatus = exitStatus
        self.signal = signal
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.timedOut = timedOut
        self.truncated = truncated
    }

    public var succeeded: Bool { exitStatus == 0 && !timedOut }

    /// "exit status 1", "killed after the timeout", "signal 9": for messages.
    public var outcome: String {
        if timedOut { return "killed after the timeout" }
        if let exitStatus { return "exit status \(exitStatus)" }
        return "signal \(signal ?? 0)"
    }
}

/// Runs programs. `SubprocessRunner` for real; tests give a fake that answers from a script.
public protocol CommandRunner: Sendable {
    /// Runs `arguments[0]` (a path, or a name looked up in PATH) with the rest as its arguments and
    /// `input` on its standard input (at most `SubprocessRunner.maxInputBytes`; empty: /dev/null). Throws only when
    /// the program cannot be started; a failing program is a result.
    func run(
        _ arguments: [String], environment: [String: String], input: [UInt8], timeout: Duration
    ) throws(SystemCallError) -> CommandResult
}

extension CommandRunner {
    public func run(_ arguments: [String], timeout: Duration) throws(SystemCallError) -> CommandResult {
        try run(arguments, environment: [:], input: [], timeout: timeout)
    }

    public func run(
        _ arguments: [String], environment: [String: String], timeout: Duration
    ) throws(SystemCallError) -> CommandResult {
        try run(arguments, environment: environment, input: [], timeout: timeout)
    }
}

/// The real runner: posix_spawnp, pipes, poll, and SIGKILL to the process group at the deadline.
public struct SubprocessRunner: CommandRunner {
    /// Bytes kept of each stream; the rest is read and dropped (so the program never blocks).
    public let outputLimit: Int

    /// Standard input a program is given whole, before it starts: what an empty pipe holds (Linux's
    /// pipes hold 64 KiB), so writing it never waits for the program.
    public static let maxInputBytes = 60 << 10

    public init(outputLimit: Int = 1 << 20) { self.outputLimit = outputLimit }

    /// `environment` is added to this process's own (a key given here wins).
    public func run(
        _ arguments: [String], environment: [String: String], input: [UInt8], timeout: Duration
    ) throws(SystemCallError) -> CommandResult {
        precondition(!arguments.isEmpty, "a command needs a program")
        guard input.count <= Self.maxInputBytes else {
            throw SystemCallError("standard input for \(arguments[0]) (\(input.count) bytes)", Errno(rawValue: E2BIG))
        }
        var pipes: [(read: Int32, write: Int32)] = []
        defer { for pipe in pipes { Syscall.close(pipe.read); Syscall.close(pipe.write) } }
        for _ in 0..<(input.isEmpty ? 2 : 3) { pipes.append(try Syscall.pipe()) }
        let output = pipes[0]
        let errors = pipes[1]
        // The child's ends block as a program expects; ours stay non-blocking for poll.
        for fd in [output.write, errors.write] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if input.isEmpty {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        } else {
            let stdin = pipes[2]
            _ = fcntl(stdin.read, F_SETFL, fcntl(stdin.read, F_GETFL) & ~O_NONBLOCK)
            let written = input.withUnsafeBytes { write(stdin.write, $0.baseAddress, $0.count) }
            guard written == input.count else {
                // A short write: the pipe holds less than usual (a user past pipe-user-pages-soft).
                throw SystemCallError(
                    "write standard input for \(arguments[0]) (\(max(0, written)) of \(input.count) bytes)",
                    Errno(rawValue: written < 0 ? errno : EAGAIN))
            }
            posix_spawn_file_actions_adddup2(&actions, stdin.read, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, output.write, 1)
        posix_spawn_file_actions_adddup2(&actions, errors.write, 2)
        // The pipes' own descriptors (3 and up, close-on-exec) go at the exec.
        // Its own process group: the timeout kills what it started too.
        let spawned = spawnProcess(arguments, environment: environment, actions: &actions, processGroup: 0)
        // Ours from here: the read ends of output and errors. The rest closes now: the child's
        // output ends when it exits, its input where `input` does.
        let outputRead = output.read
        let errorsRead = errors.read
        for pipe in pipes.dropFirst(2) { Syscall.close(pipe.read) }
        for pipe in pipes { Syscall.close(pipe.write) }
        pipes = []
        let pid: pid_t
        switch spawned {
        case .success(let child): pid = child
        case .failure(let error):
            Syscall.close(outputRead)
            Syscall.close(errorsRead)
            throw error
        }
        return collect(pid: pid, output: outputRead, errors: errorsRead, deadline: .now + timeout)
    }

    /// Reads both pipes until they close or the deadline passes, then reaps the child.
    private func collect(pid: pid_t, output: Int32, errors: Int32, deadline: ContinuousClock.Instant) -> CommandResult {
        defer {
            Syscall.close(output)
            Syscall.close(errors)
        }
        var streams: [(fd: Int32, bytes: [UInt8], open: Bool)] = [(output, [], true), (errors, [], true)]
        var truncated = false
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while streams.contains(where: \.open) {
            var fds = streams.filter(\.open).map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let ready = (try? Syscall.poll(&fds, deadline: deadline)) ?? 0
            if ready == 0 && ContinuousClock.now >= deadline {
                timedOut = true
                kill(-pid, SIGKILL)
                break
            }
            for polled in fds where polled.revents != 0 {
                guard let index = streams.firstIndex(where: { $0.fd == polled.fd }) else { continue }
                let count = buffer.withUnsafeMutableBytes { read(polled.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    let room = max(0, outputLimit - streams[index].bytes.count)
                    if count > room { truncated = true }
                    streams[index].bytes += buffer[..<min(count, room)]
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    streams[index].open = false
                }
            }
        }
        // A program that closed its output may still be running: the deadline holds for it too.
        var status: Int32 = 0
        while !timedOut {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid || (waited < 0 && errno != EINTR) { break }
            if ContinuousClock.now >= deadline {
                timedOut = true
                kill(-pid, SIGKILL)
            } else {
                usleep(2_000)
            }
        }
        if timedOut {
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            kill(-pid, SIGKILL)  // whatever it left running in its group goes too
        }
        let exited = status & 0x7F == 0
        return CommandResult(
            exitStatus: exited ? (status >> 8) & 0xFF : nil, signal: exited ? nil : status & 0x7F,
            standardOutput: String(decoding: streams[0].bytes, as: UTF8.self),
            standardError: String(decoding: streams[1].bytes, as: UTF8.self), timedOut: timedOut,
            truncated: truncated)
    }
}

/// posix_spawnp of `arguments` with `actions`, into process group `processGroup` (0: a new group the
/// child leads), default signal dispositions and no signal blocked, with `environment` added to this
/// process's own (a key given here wins). The child's pid.
func spawnProcess(
    _ arguments: [String], environment: [String: String], actions: inout posix_spawn_file_actions_t,
    processGroup: pid_t
) -> Result<pid_t, SystemCallError> {
    precondition(!arguments.isEmpty, "a command needs a program")
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setpgroup(&attributes, processGroup)
    var defaults = sigset_t()
    sigfillset(&defaults)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var noneBlocked = sigset_t()
    sigemptyset(&noneBlocked)
    posix_spawnattr_setsigmask(&attributes, &noneBlocked)
    posix_spawnattr_setflags(
        &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

    var merged: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let equals = text.firstIndex(of: "=") {
            merged[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        entry += 1
    }
    for (key, value) in environment { merged[key] = value }
    let environmentLines = merged.keys.sorted().map { "\($0)=\(merged[$0]!)" }

    var pid: pid_t = 0
    // Not while another thread holds a descriptor without close-on-exec (Syscall.pipe, accept).
    let spawned = descriptorCreation.withLock { _ in
        withCStrings(arguments) { argv in
            withCStrings(environmentLines) { envp in
                posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
            }
        }
    }
    guard spawned == 0 else {
        return .failure(SystemCallError("posix_spawnp \(arguments[0])", Errno(rawValue: spawned)))
    }
    return .success(pid)
}

/// A NULL-terminated array of C strings for the duration of `body`.
private func withCStrings<Result>(
    _ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Result
) -> Result {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
