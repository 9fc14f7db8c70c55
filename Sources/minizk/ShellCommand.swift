import ArgumentParser
import Foundation
import NIOConcurrencyHelpers
import ZKClient
import ZKServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `minizk shell`: ZooKeeper's zkCli commands on ZKClient, against MiniZK or ZooKeeper.
///
/// `minizk shell HOST:PORT -- ls /` runs one command and exits (status 1 when it failed);
/// without a command the shell reads commands from standard input, with zkCli's prompt when
/// that is a terminal. Output is zkCli's (ZooKeeper 3.8's `org.apache.zookeeper.cli` formats and
/// messages); `--json` prints one JSON object per command instead.
struct ShellCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "zkCli's commands on the Swift client, against MiniZK or ZooKeeper.",
        discussion: """
            minizk shell 127.0.0.1:2181 -- ls -s /      one command, then exit
            minizk shell -server 127.0.0.1:2181/app     interactive (commands from stdin)
            Type 'help' in the shell for the commands.
            """
    )

    @Option(name: .customLong("server", withSingleDash: true), help: "HOST:PORT[,HOST:PORT...][/chroot] (zkCli's -server).")
    var server: String?

    @Option(name: .customLong("timeout", withSingleDash: true), help: "Session timeout in ms (zkCli's -timeout).")
    var timeoutMs: Int = 30000

    @Flag(help: "Print one JSON object per command instead of zkCli's text.")
    var json = false

    @Argument(help: "HOST:PORT[,HOST:PORT...][/chroot], when -server is not given.")
    var hosts: String?

    @Argument(parsing: .postTerminator, help: "A command and its arguments (after --): run it and exit.")
    var command: [String] = []

    func validate() throws {
        if server != nil && hosts != nil { throw ValidationError("give the server once (-server or HOSTS)") }
        guard timeoutMs > 0 else { throw ValidationError("-timeout must be positive") }
    }

    func run() async throws {
        let connectString = server ?? hosts ?? "localhost:2181"
        let printer = ShellPrinter(json: json)
        let shell = Shell(hosts: connectString, timeoutMs: timeoutMs, printer: printer, interactive: command.isEmpty)
        await shell.connect(to: connectString)
        if !command.isEmpty {
            let ok = await shell.execute(words: command, line: command.joined(separator: " "))
            await shell.shutdown()
            if !ok { throw ExitCode.failure }
            return
        }
        let terminal = isatty(STDIN_FILENO) != 0
        // Standard input is read on a thread of its own, so a blocked read never holds one of
        // the few threads that print watch events while the shell waits for the next line.
        // On a terminal, ShellLineEditor reads (Tab completes paths); otherwise plain lines.
        let editor = terminal ? ShellLineEditor() : nil
        editor?.client.withLockedValue { $0 = shell.currentClient }
        let input = AsyncStream<String> { continuation in
            let reader = Thread {
                if let editor {
                    editor.run { continuation.yield($0) }
                } else {
                    while let line = readLine(strippingNewline: true) { continuation.yield(line) }
                }
                continuation.finish()
            }
            reader.start()
        }
        defer { editor?.restore() }
        var lines = input.makeAsyncIterator()
        while true {
            if terminal {
                let prompt = shell.prompt
                editor?.prompt.withLockedValue { $0 = prompt }
                editor?.client.withLockedValue { $0 = shell.currentClient }
                printer.prompt(prompt)
            }
            guard let line = await lines.next() else { break }
            let words = Shell.split(line)
            if words.isEmpty { continue }
            if words[0] == "quit" { break }
            _ = await shell.execute(words: words, line: line)
        }
        await shell.shutdown()
    }
}

// MARK: - Output

/// Where the shell writes: stdout and stderr as zkCli does (command output to stdout, "Created"
/// and errors to stderr), flushed after every line so both streams interleave as they happened;
/// watch events come from other tasks, hence the lock.
final class ShellPrinter: Sendable {
    let json: Bool
    private let state = NIOLockedValueBox<Bool>(true)  // printwatches

    init(json: Bool) { self.json = json }

    var printWatches: Bool {
        get { state.withLockedValue { $0 } }
        set { state.withLockedValue { $0 = newValue } }
    }

    func out(_ text: String) { write(STDOUT_FILENO, text + "\n") }
    func err(_ text: String) { write(STDERR_FILENO, text + "\n") }
    func prompt(_ text: String) { write(STDOUT_FILENO, text) }

    /// A watch event (or a session state change) as zkCli's watcher prints it.
    func event(state: String, type: String, path: String?) {
        guard printWatches else { return }
        if json {
            var object: [String: Any] = ["event": type, "state": state]
            object["path"] = path ?? NSNull()
            out(Self.encode(object))
        } else {
            out("\nWATCHER::\n\nWatchedEvent state:\(state) type:\(type) path:\(path ?? "null")")
        }
    }

    static func encode(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    private let lock = NIOLock()

    private func write(_ fd: Int32, _ text: String) {
        lock.withLock {
            let bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { raw in
                    #if canImport(Glibc) || canImport(Musl)
                    Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    #else
                    Darwin.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    #endif
                }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}

/// A failed command: zkCli's message, and the error code for `--json`.
struct ShellFailure: Error {
    var message: String
    var code: String
    init(_ message: String, code: String = "usage") {
        self.message = message
        self.code = code
    }
}

/// What one command printed, in order, and its JSON form.
struct ShellReply {
    enum Line { case out(String), err(String) }
    var lines: [Line] = []
    var fields: [String: Any] = [:]
    mutating func out(_ text: String) { lines.append(.out(text)) }
    mutating func err(_ text: String) { lines.append(.err(text)) }
}

// MARK: - The shell

final class Shell {
    private(set) var hosts: String
    let timeoutMs: Int
    let printer: ShellPrinter
    let interactive: Bool
    private var client: ZooKeeperClient?
    private var closed = false
    private var history: [Int: String] = [:]
    private var commandCount = 0
    private var stateTask: Task<Void, Never>?

    init(hosts: String, timeoutMs: Int, printer: ShellPrinter, interactive: Bool) {
        self.hosts = hosts
        self.timeoutMs = timeoutMs
        self.printer = printer
        self.interactive = interactive
    }

    var currentClient: ZooKeeperClient? { closed ? nil : client }

    var prompt: String {
        let state: String
        if let client, !closed {
            switch client.state {
            case .connected, .reconnected: state = "CONNECTED"
            case .connectedReadOnly: state = "CONNECTEDREADONLY"
            case .connecting, .suspended: state = "CONNECTING"
            case .expired, .closed, .authFailed: state = "CLOSED"
            }
        } else {
            state = closed ? "CLOSED" : "NOT_CONNECTED"
        }
        return "[zk: \(hosts)(\(state)) \(commandCount)] "
    }

    func connect(to connectString: String) async {
        if let client, !closed { await client.close() }
        await stateTask?.value
        stateTask = nil
        client = nil
        hosts = connectString
        closed = false
        var configuration = ZooKeeperClient.Configuration(connectString: connectString, sessionTimeout: .milliseconds(timeoutMs))
        configuration.initialConnectTimeout = .milliseconds(min(timeoutMs, 15000))
        do {
            let started = try await ZooKeeperClient.connect(configuration: configuration)
            client = started
            if interactive {
                let printer = self.printer
                let states = started.states
                stateTask = Task {
                    for await state in states {
                        let name: String
                        switch state {
                        case .connected, .reconnected: name = "SyncConnected"
                        case .connectedReadOnly: name = "ConnectedReadOnly"
                        case .suspended: name = "Disconnected"
                        case .expired: name = "Expired"
                        case .closed: name = "Closed"
                        case .authFailed: name = "AuthFailed"
                        case .connecting: continue
                        }
                        printer.event(state: name, type: "None", path: nil)
                    }
                }
            }
        } catch {
            printer.err("Unable to connect to \(connectString): \(Self.message(for: error, path: nil))")
        }
    }

    func shutdown() async {
        if let client, !closed { await client.close() }
        await stateTask?.value
        client = nil
    }

    // MARK: Running commands

    /// Runs one command line; false when it failed.
    func execute(words: [String], line: String) async -> Bool {
        history[commandCount] = line
        defer { commandCount += 1 }
        return await run(words)
    }

    private func run(_ words: [String]) async -> Bool {
        var reply = ShellReply()
        let name = words[0]
        var ok = true
        do {
            try await dispatch(name, Array(words.dropFirst()), into: &reply)
        } catch let failure as ShellFailure {
            ok = false
            reply.err(failure.message)
            reply.fields["error"] = failure.code
            reply.fields["message"] = failure.message
        } catch {
            ok = false
            let message = Self.message(for: error, path: nil)
            reply.err(message)
            reply.fields["error"] = (error as? ZooKeeperError)?.code.name ?? "error"
            reply.fields["message"] = message
        }
        if printer.json {
            var object = reply.fields
            object["command"] = name
            object["ok"] = ok
            printer.out(ShellPrinter.encode(object))
        } else {
            for line in reply.lines {
                switch line {
                case .out(let text): printer.out(text)
                case .err(let text): printer.err(text)
                }
            }
        }
        return ok
    }

    private func connected() throws -> ZooKeeperClient {
        guard let client, !closed else { throw ShellFailure("Not connected", code: "CONNECTIONLOSS") }
        return client
    }

    private func dispatch(_ name: String, _ args: [String], into reply: inout ShellReply) async throws {
        switch name {
        case "ls": try await ls(args, &reply)
        case "get": try await get(args, &reply)
        case "set": try await set(args, &reply)
        case "create": try await create(args, &reply)
        case "stat": try await stat(args, &reply)
        case "delete": try await delete(args, &reply)
        case "deleteall", "rmr": try await deleteAll(args, &reply)
        case "getAcl": try await getAcl(args, &reply)
        case "setAcl": try await setAcl(args, &reply)
        case "addauth": try await addAuth(args, &reply)
        case "sync": try await sync(args, &reply)
        case "getEphemerals": try await getEphemerals(args, &reply)
        case "getAllChildrenNumber": try await getAllChildrenNumber(args, &reply)
        case "addWatch": try await addWatch(args, &reply)
        case "removewatches": try await removeWatches(args, &reply)
        case "whoami": try await whoAmI(args, &reply)
        case "config": try await config(args, &reply)
        case "reconfig": try await reconfig(args, &reply)
        case "listquota": try await listQuota(args, &reply)
        case "setquota": try await setQuota(args, &reply)
        case "delquota": try await delQuota(args, &reply)
        case "history": history(&reply)
        case "redo": try await redo(args, &reply)
        case "printwatches": printWatches(args, &reply)
        case "connect":
            let target = args.first ?? hosts
            await connect(to: target)
            reply.fields["connected"] = client != nil
            if client == nil { throw ShellFailure("Unable to connect to \(target)", code: "CONNECTIONLOSS") }
        case "close":
            if let client, !closed { await client.close() }
            await stateTask?.value
            closed = true
        case "version":
            reply.out("ZooKeeper CLI version: MiniZK \(MiniZKVersion.fullVersion)")
        case "help": for line in Self.usage { reply.err(line) }
        default:
            for line in Self.usage { reply.err(line) }
            throw ShellFailure("Command not found: Command not found \(name)", code: "unknown-command")
        }
    }

    static let usage: [String] = [
        "ZooKeeper -server host:port -client-configuration properties-file cmd args",
        "\taddWatch [-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
        "\taddauth scheme auth",
        "\tclose ",
        "\tconfig [-c] [-w] [-s]",
        "\tconnect host:port",
        "\tcreate [-s] [-e] [-c] [-t ttl] path [data] [acl]",
        "\tdelete [-v version] path",
        "\tdeleteall path [-b batch size]",
        "\tdelquota [-n|-b|-N|-B] path",
        "\tget [-s] [-w] path",
        "\tgetAcl [-s] path",
        "\tgetAllChildrenNumber path",
        "\tgetEphemerals path",
        "\thistory ",
        "\tlistquota path",
        "\tls [-s] [-w] [-R] path",
        "\tprintwatches on|off",
        "\tquit ",
        "\treconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
        "\tredo cmdno",
        "\tremovewatches path [-c|-d|-a] [-l]",
        "\tset [-s] [-v version] path data",
        "\tsetAcl [-s] [-v version] [-R] path acl",
        "\tsetquota -n|-b|-N|-B val path",
        "\tstat [-w] path",
        "\tsync path",
        "\tversion ",
        "\twhoami ",
    ]

    // MARK: Options

    /// Commons-cli's POSIX parsing as zkCli uses it: `-x` flags, `-x VALUE` options, the rest
    /// positional (the command name is not in `args`).
    struct Parsed {
        var flags: Set<String> = []
        var values: [String: String] = [:]
        var positional: [String] = []
        func has(_ flag: String) -> Bool { flags.contains(flag) || values[flag] != nil }
    }

    static func parse(_ args: [String], flags: Set<String>, valued: Set<String> = [], usage: String) throws -> Parsed {
        var parsed = Parsed()
        var index = 0
        while index < args.count {
            let word = args[index]
            if word.count >= 2, word.hasPrefix("-"), !word.hasPrefix("--") || word == "--" {
                let option = String(word.dropFirst())
                if flags.contains(option) {
                    parsed.flags.insert(option)
                } else if valued.contains(option) {
                    guard index + 1 < args.count else { throw ShellFailure("Missing argument for option: \(option)") }
                    parsed.values[option] = args[index + 1]
                    index += 1
                } else if Int(word) == nil {
                    throw ShellFailure("Unrecognized option: \(word)")
                } else {
                    parsed.positional.append(word)
                }
            } else {
                parsed.positional.append(word)
            }
            index += 1
        }
        return parsed
    }

    static func path(_ parsed: Parsed, usage: String, at index: Int = 0) throws -> String {
        guard parsed.positional.count > index else { throw ShellFailure(usage) }
        let path = parsed.positional[index]
        try validate(path)
        return path
    }

    /// The client-side path checks of ZooKeeper's PathUtils, with their messages.
    static func validate(_ path: String, sequential: Bool = false) throws {
        if path.isEmpty { throw ShellFailure("Path length must be > 0", code: "malformed-path") }
        if !path.hasPrefix("/") { throw ShellFailure("Path must start with / character", code: "malformed-path") }
        if path.count == 1 { return }
        if path.hasSuffix("/") && !sequential { throw ShellFailure("Path must not end with / character", code: "malformed-path") }
        if path.contains("//") { throw ShellFailure("Invalid path string \"\(path)\" caused by empty node name specified", code: "malformed-path") }
    }

    private func version(_ parsed: Parsed) throws -> Int32 {
        guard let text = parsed.values["v"] else { return -1 }
        guard let value = Int32(text) else { throw ShellFailure("-v argument must be an int value") }
        return value
    }

    // MARK: Formatting

    static func statLines(_ stat: Stat) -> [String] {
        [
            "cZxid = 0x\(String(UInt64(bitPattern: stat.czxid), radix: 16))",
            "ctime = \(javaDate(stat.ctime))",
            "mZxid = 0x\(String(UInt64(bitPattern: stat.mzxid), radix: 16))",
            "mtime = \(javaDate(stat.mtime))",
            "pZxid = 0x\(String(UInt64(bitPattern: stat.pzxid), radix: 16))",
            "cversion = \(stat.cversion)",
            "dataVersion = \(stat.version)",
            "aclVersion = \(stat.aversion)",
            "ephemeralOwner = 0x\(String(UInt64(bitPattern: stat.ephemeralOwner), radix: 16))",
            "dataLength = \(stat.dataLength)",
            "numChildren = \(stat.numChildren)",
        ]
    }

    static func statJSON(_ stat: Stat) -> [String: Any] {
        [
            "czxid": stat.czxid, "mzxid": stat.mzxid, "ctime": stat.ctime, "mtime": stat.mtime, "pzxid": stat.pzxid,
            "cversion": Int(stat.cversion), "version": Int(stat.version), "aversion": Int(stat.aversion),
            "ephemeralOwner": stat.ephemeralOwner, "dataLength": Int(stat.dataLength), "numChildren": Int(stat.numChildren),
        ]
    }

    /// `java.util.Date.toString()`: `EEE MMM dd HH:mm:ss zzz yyyy` in the local time zone.
    static func javaDate(_ milliseconds: Int64) -> String {
        let date = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
        let zone = TimeZone.current
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = zone
        formatter.dateFormat = "EEE MMM dd HH:mm:ss"
        let year = DateFormatter()
        year.locale = Locale(identifier: "en_US_POSIX")
        year.timeZone = zone
        year.dateFormat = "yyyy"
        let abbreviation = zone.identifier == "UTC" || zone.identifier == "Etc/UTC" ? "UTC" : (zone.abbreviation(for: date) ?? zone.identifier)
        return "\(formatter.string(from: date)) \(abbreviation) \(year.string(from: date))"
    }


    /// `AclParser.parse`: `scheme:id:perms[,scheme:id:perms...]`.
    static func parseACL(_ text: String, warnings: inout [String]) throws -> [ACL] {
        var acl: [ACL] = []
        for entry in text.split(separator: ",") {
            guard let first = entry.firstIndex(of: ":"), let last = entry.lastIndex(of: ":"), first != last else {
                throw ShellFailure("\(entry) does not have the form scheme:id:perm", code: "invalid-acl")
            }
            let scheme = String(entry[entry.startIndex..<first])
            let id = String(entry[entry.index(after: first)..<last])
            var perms = Perms()
            for character in entry[entry.index(after: last)...] {
                switch character {
                case "r": perms.insert(.read)
                case "w": perms.insert(.write)
                case "c": perms.insert(.create)
                case "d": perms.insert(.delete)
                case "a": perms.insert(.admin)
                default: warnings.append("Unknown perm type: \(character)")
                }
            }
            acl.append(ACL(perms: perms, id: Id(scheme: scheme, id: id)))
        }
        return acl
    }

    /// The message zkCli prints for a failed call (`CliWrapperException`, then
    /// `KeeperException.getMessage()`).
    static func message(for error: any Error, path: String?) -> String {
        if let failure = error as? ShellFailure { return failure.message }
        guard let error = error as? ZooKeeperError else { return "\(error)" }
        let path = error.path ?? path ?? ""
        switch error.code {
        case .noNode: return "Node does not exist: \(path)"
        case .noChildrenForEphemerals: return "Ephemerals cannot have children: \(path)"
        case .nodeExists: return "Node already exists: \(path)"
        case .notEmpty: return "Node not empty: \(path)"
        case .notReadOnly: return "Not a read-only call: \(path)"
        case .invalidACL: return "Acl is not valid : \(path)"
        case .noAuth: return "Insufficient permission : \(path)"
        case .badArguments: return "Arguments are not valid : \(path)"
        case .badVersion: return "version No is not valid : \(path)"
        case .quotaExceeded: return "Quota has exceeded : \(path)"
        case .reconfigInProgress: return "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
        case .newConfigNoQuorum:
            return "No quorum of new config is connected and up-to-date with the leader of last commmitted config - try invoking reconfiguration after new servers are connected and synced"
        default:
            let text = "KeeperErrorCode = \(keeperCodeText(error.code))"
            return path.isEmpty ? text : "\(text) for \(path)"
        }
    }

    /// `KeeperException.getCodeMessage`.
    static func keeperCodeText(_ code: ErrorCode) -> String {
        switch code {
        case .ok: return "ok"
        case .systemError: return "SystemError"
        case .runtimeInconsistency: return "RuntimeInconsistency"
        case .dataInconsistency: return "DataInconsistency"
        case .connectionLoss: return "ConnectionLoss"
        case .marshallingError: return "MarshallingError"
        case .unimplemented: return "Unimplemented"
        case .operationTimeout: return "OperationTimeout"
        case .badArguments: return "BadArguments"
        case .apiError: return "APIError"
        case .noNode: return "NoNode"
        case .noAuth: return "NoAuth"
        case .badVersion: return "BadVersion"
        case .noChildrenForEphemerals: return "NoChildrenForEphemerals"
        case .nodeExists: return "NodeExists"
        case .invalidACL: return "InvalidACL"
        case .authFailed: return "AuthFailed"
        case .notEmpty: return "Directory not empty"
        case .sessionExpired: return "Session expired"
        case .invalidCallback: return "Invalid callback"
        case .sessionMoved: return "Session moved"
        case .notReadOnly: return "Not a read-only call"
        case .ephemeralOnLocalSession: return "Ephemeral node on local session"
        case .noWatcher: return "No such watcher"
        case .reconfigDisabled: return "Reconfig is disabled"
        case .sessionClosedRequireSaslAuth: return "Session closed because client failed to authenticate"
        case .quotaExceeded: return "Quota has exceeded"
        case .throttledOp: return "Op throttled due to high load"
        case .requestTimeout: return "Request timeout"
        case .unknownSession: return "Unknown session"
        case .newConfigNoQuorum: return "NewConfigNoQuorum"
        case .reconfigInProgress: return "ReconfigInProgress"
        }
    }

    /// zkCli's line splitting: words, with "double" or 'single' quotes keeping spaces.
    static func split(_ line: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }

    private static func call<T>(_ path: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ZooKeeperError {
            var error = error
            if error.path == nil { error.path = path }
            throw ShellFailure(message(for: error, path: path), code: error.code.name)
        }
    }

    private static func failure(_ code: ErrorCode, path: String) -> ShellFailure {
        ShellFailure(message(for: ZooKeeperError(code, path: path), path: path), code: code.name)
    }

    // MARK: Watches

    private func follow(_ watch: OneShotWatch?, path: String, removedType: String) {
        guard let watch else { return }
        Task { [printer] in await ShellWatches.oneShot(watch, path: path, removedType: removedType, printer: printer) }
    }

    static func eventName(_ type: EventType) -> String {
        switch type {
        case .none: return "None"
        case .nodeCreated: return "NodeCreated"
        case .nodeDeleted: return "NodeDeleted"
        case .nodeDataChanged: return "NodeDataChanged"
        case .nodeChildrenChanged: return "NodeChildrenChanged"
        case .dataWatchRemoved: return "DataWatchRemoved"
        case .childWatchRemoved: return "ChildWatchRemoved"
        case .persistentWatchRemoved: return "PersistentWatchRemoved"
        }
    }

    // MARK: Commands

    private func ls(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "ls [-s] [-w] [-R] path"
        var words = args
        // 'ls path watch': the old form.
        if words.count == 2, !words[0].hasPrefix("-"), !words[1].hasPrefix("-") {
            reply.err("'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead.")
            words = ["-w", words[0]]
        }
        let parsed = try Self.parse(words, flags: ["s", "w", "R", "?"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let client = try connected()
        let watch = parsed.has("w")
        if parsed.has("R") {
            // zkCli 3.8 lists the tree breadth first (ZKUtil.listSubTreeBFS): each level in turn.
            var visited: [String] = []
            try await Self.call(path) {
                var queue = [path]
                while !queue.isEmpty {
                    let node = queue.removeFirst()
                    visited.append(node)
                    let (children, oneShot) = try await client.getChildren(node, watch: watch)
                    follow(oneShot, path: node, removedType: "ChildWatchRemoved")
                    for child in children.sorted() { queue.append(node == "/" ? "/\(child)" : "\(node)/\(child)") }
                }
            }
            for node in visited { reply.out(node) }
            reply.fields["paths"] = visited
            return
        }
        let (children, stat, oneShot) = try await Self.call(path) { try await client.getChildrenWithStat(path, watch: watch) }
        follow(oneShot, path: path, removedType: "ChildWatchRemoved")
        let sorted = children.sorted()
        reply.out("[\(sorted.joined(separator: ", "))]")
        reply.fields["path"] = path
        reply.fields["children"] = sorted
        if parsed.has("s") {
            for line in Self.statLines(stat) { reply.out(line) }
            reply.fields["stat"] = Self.statJSON(stat)
        }
    }

    private func get(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "get [-s] [-w] path"
        var words = args
        if words.count == 2, !words[0].hasPrefix("-"), !words[1].hasPrefix("-") {
            reply.err("'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.")
            words = ["-w", words[0]]
        }
        let parsed = try Self.parse(words, flags: ["s", "w", "?"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let client = try connected()
        let (result, oneShot) = await client.send(.getData(path: path, watch: parsed.has("w")), watch: parsed.has("w"))
        switch result {
        case .success(.getData(let data, let stat)):
            follow(oneShot, path: path, removedType: "DataWatchRemoved")
            reply.out(data.map { String(decoding: $0, as: UTF8.self) } ?? "null")
            reply.fields["path"] = path
            reply.fields["data"] = data.map { String(decoding: $0, as: UTF8.self) } ?? NSNull()
            if parsed.has("s") {
                for line in Self.statLines(stat) { reply.out(line) }
                reply.fields["stat"] = Self.statJSON(stat)
            }
        case .success:
            throw Self.failure(.marshallingError, path: path)
        case .failure(let code):
            throw Self.failure(code, path: path)
        }
    }

    private func set(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "set [-s] [-v version] path data"
        let parsed = try Self.parse(args, flags: ["s", "?"], valued: ["v"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        guard parsed.positional.count >= 2 else { throw ShellFailure(usage) }
        let version = try version(parsed)
        let client = try connected()
        let stat = try await Self.call(path) { try await client.setData(path, data: Array(parsed.positional[1].utf8), version: version) }
        reply.fields["path"] = path
        reply.fields["stat"] = Self.statJSON(stat)
        if parsed.has("s") { for line in Self.statLines(stat) { reply.out(line) } }
    }

    private func create(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "create [-s] [-e] [-c] [-t ttl] path [data] [acl]"
        let parsed = try Self.parse(args, flags: ["s", "e", "c", "?"], valued: ["t"], usage: usage)
        guard let path = parsed.positional.first else { throw ShellFailure(usage) }
        let hasE = parsed.has("e"), hasS = parsed.has("s"), hasC = parsed.has("c"), hasT = parsed.has("t")
        if hasC && (hasE || hasS) { throw ShellFailure("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.") }
        var ttl: Int64 = 0
        if hasT {
            guard let value = Int64(parsed.values["t"]!) else { throw ShellFailure("-t argument must be a long value") }
            ttl = value
        }
        if hasT && hasE { throw ShellFailure("TTLs cannot be used with Ephemeral znodes") }
        if hasT && hasC { throw ShellFailure("TTLs cannot be used with Container znodes") }
        if hasT && (ttl <= 0 || ttl > 0xFF_FFFF_FFFF) { throw ShellFailure("ttl must be positive and cannot be larger than: 1099511627775") }
        let mode: CreateMode
        if hasE && hasS {
            mode = .ephemeralSequential
        } else if hasE {
            mode = .ephemeral
        } else if hasS {
            mode = hasT ? .persistentSequentialWithTTL : .persistentSequential
        } else if hasC {
            mode = .container
        } else {
            mode = hasT ? .persistentWithTTL : .persistent
        }
        try Self.validate(path, sequential: mode.isSequential)
        let data: [UInt8]? = parsed.positional.count > 1 ? Array(parsed.positional[1].utf8) : nil
        var warnings: [String] = []
        let acl = parsed.positional.count > 2 ? try Self.parseACL(parsed.positional[2], warnings: &warnings) : ACL.openUnsafe
        for warning in warnings { reply.err(warning) }
        let client = try connected()
        let request = CreateRequest(path: path, data: data, acl: acl, flags: mode.rawValue, ttl: hasT ? ttl : nil)
        let message: Request = mode.isTTL ? .createTTL(request) : mode.isContainer ? .createContainer(request) : .create2(request)
        let (result, _) = await client.send(message)
        switch result {
        case .success(.create2(let created, _)), .success(.create(let created)):
            reply.err("Created \(created)")
            reply.fields["path"] = created
        case .success:
            throw Self.failure(.marshallingError, path: path)
        case .failure(let code):
            if code == .ephemeralOnLocalSession { reply.err("Unable to create ephemeral node on a local session") }
            throw Self.failure(code, path: path)
        }
    }

    private func stat(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "stat [-w] path"
        let parsed = try Self.parse(args, flags: ["w", "?"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let client = try connected()
        let (stat, oneShot) = try await Self.call(path) { try await client.exists(path, watch: parsed.has("w")) }
        follow(oneShot, path: path, removedType: "DataWatchRemoved")
        guard let stat else { throw Self.failure(.noNode, path: path) }
        for line in Self.statLines(stat) { reply.out(line) }
        reply.fields["path"] = path
        reply.fields["stat"] = Self.statJSON(stat)
    }

    private func delete(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "delete [-v version] path"
        let parsed = try Self.parse(args, flags: ["?"], valued: ["v"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let version = try version(parsed)
        let client = try connected()
        try await Self.call(path) { try await client.delete(path, version: version) }
        reply.fields["path"] = path
    }

    private func deleteAll(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "deleteall path [-b batch size]"
        let parsed = try Self.parse(args, flags: ["?"], valued: ["b"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        if let batch = parsed.values["b"], (Int(batch) ?? 0) <= 0 { throw ShellFailure("batch size must be greater than 0") }
        let client = try connected()
        // Breadth-first listing, then deletes from the deepest node up (ZKUtil.deleteRecursive).
        var nodes: [String] = []
        var current = path
        try await Self.call(path) {
            var queue = [path]
            while !queue.isEmpty {
                let node = queue.removeFirst()
                nodes.append(node)
                for child in try await client.getChildren(node) { queue.append(node == "/" ? "/\(child)" : "\(node)/\(child)") }
            }
        }
        do {
            for node in nodes.reversed() where node != "/" && !(path == "/" && node.hasPrefix("/zookeeper")) {
                current = node
                do { try await client.delete(node) } catch ZooKeeperError.noNode {}
            }
        } catch let error as ZooKeeperError {
            throw ShellFailure(Self.message(for: error, path: current), code: error.code.name)
        }
        reply.fields["path"] = path
        reply.fields["deleted"] = nodes.count
    }

    private func getAcl(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "getAcl [-s] path"
        let parsed = try Self.parse(args, flags: ["s", "?"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let client = try connected()
        let (acl, stat) = try await Self.call(path) { try await client.getACL(path) }
        var entries: [[String: Any]] = []
        for entry in acl {
            reply.out("'\(entry.id.scheme),'\(entry.id.id)")
            reply.out(": \(entry.perms.letters)")
            entries.append(["scheme": entry.id.scheme, "id": entry.id.id, "perms": entry.perms.letters])
        }
        reply.fields["path"] = path
        reply.fields["acl"] = entries
        if parsed.has("s") {
            for line in Self.statLines(stat) { reply.out(line) }
            reply.fields["stat"] = Self.statJSON(stat)
        }
    }

    private func setAcl(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "setAcl [-s] [-v version] [-R] path acl"
        let parsed = try Self.parse(args, flags: ["s", "R", "?"], valued: ["v"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        guard parsed.positional.count >= 2 else { throw ShellFailure(usage) }
        var warnings: [String] = []
        let acl = try Self.parseACL(parsed.positional[1], warnings: &warnings)
        for warning in warnings { reply.err(warning) }
        let version = try version(parsed)
        let client = try connected()
        var targets = [path]
        if parsed.has("R") {
            try await Self.call(path) {
                var queue = [path]
                targets = []
                while !queue.isEmpty {
                    let node = queue.removeFirst()
                    targets.append(node)
                    for child in try await client.getChildren(node) { queue.append(node == "/" ? "/\(child)" : "\(node)/\(child)") }
                }
            }
        }
        var last = Stat()
        for target in targets {
            last = try await Self.call(target) { try await client.setACL(target, acl: acl, version: parsed.has("R") ? -1 : version) }
        }
        reply.fields["path"] = path
        if parsed.has("s") && !parsed.has("R") {
            for line in Self.statLines(last) { reply.out(line) }
            reply.fields["stat"] = Self.statJSON(last)
        }
    }

    private func addAuth(_ args: [String], _ reply: inout ShellReply) async throws {
        guard args.count >= 1 else { throw ShellFailure("addauth scheme auth") }
        let client = try connected()
        let auth = args.count > 1 ? Array(args[1].utf8) : []
        try await Self.call("") { try await client.addAuth(scheme: args[0], auth: auth) }
        reply.fields["scheme"] = args[0]
    }

    private func sync(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "sync path"
        let parsed = try Self.parse(args, flags: [], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let client = try connected()
        do {
            _ = try await client.sync(path)
            reply.out("Sync is OK")
        } catch let error as ZooKeeperError {
            reply.out("Sync has failed. rc=\(error.code.rawValue)")
            reply.fields["rc"] = Int(error.code.rawValue)
            throw ShellFailure("", code: error.code.name)
        }
        reply.fields["path"] = path
    }

    private func getEphemerals(_ args: [String], _ reply: inout ShellReply) async throws {
        let parsed = try Self.parse(args, flags: ["?"], usage: "getEphemerals path")
        let path = parsed.positional.first ?? "/"
        try Self.validate(path)
        let client = try connected()
        let paths = try await Self.call(path) { try await client.getEphemerals(path) }
        reply.out("[\(paths.joined(separator: ", "))]")
        reply.fields["path"] = path
        reply.fields["ephemerals"] = paths
    }

    private func getAllChildrenNumber(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "getAllChildrenNumber path"
        let parsed = try Self.parse(args, flags: ["?"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let client = try connected()
        let count = try await Self.call(path) { try await client.getAllChildrenNumber(path) }
        reply.out("\(count)")
        reply.fields["path"] = path
        reply.fields["count"] = count
    }

    private func addWatch(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "addWatch [-m mode] path"
        let parsed = try Self.parse(args, flags: ["?"], valued: ["m"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let mode: AddWatchMode
        // zkCli 3.8 sets a PERSISTENT watch when -m is not given (its usage line says otherwise).
        switch parsed.values["m"]?.uppercased() ?? "PERSISTENT" {
        case "PERSISTENT": mode = .persistent
        case "PERSISTENT_RECURSIVE": mode = .persistentRecursive
        case let other: throw ShellFailure("Unsupported mode: \(other)")
        }
        let client = try connected()
        let watch = try await Self.call(path) { try await client.addWatch(path, mode: mode) }
        Task { [printer] in await ShellWatches.persistent(watch, path: path, printer: printer) }
        reply.fields["path"] = path
        reply.fields["mode"] = mode == .persistent ? "PERSISTENT" : "PERSISTENT_RECURSIVE"
    }

    private func removeWatches(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "removewatches path [-c|-d|-a] [-l]"
        let parsed = try Self.parse(args, flags: ["c", "d", "a", "l", "?"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let type: WatcherType = parsed.has("c") ? .children : parsed.has("d") ? .data : .any
        if parsed.has("l") { throw ShellFailure("removewatches -l (local) is not supported by this client") }
        let client = try connected()
        try await Self.call(path) { try await client.removeWatches(path, type: type) }
        reply.fields["path"] = path
    }

    private func whoAmI(_ args: [String], _ reply: inout ShellReply) async throws {
        let client = try connected()
        let identities = try await Self.call("") { try await client.whoAmI() }
        reply.out("Auth scheme: User")
        for identity in identities { reply.out("\(identity.authScheme): \(identity.user)") }
        reply.fields["identities"] = identities.map { ["scheme": $0.authScheme, "user": $0.user] }
    }

    private func config(_ args: [String], _ reply: inout ShellReply) async throws {
        let parsed = try Self.parse(args, flags: ["c", "w", "s", "?"], usage: "config [-c] [-w] [-s]")
        let client = try connected()
        let (data, stat, oneShot) = try await Self.call("/zookeeper/config") { try await client.getConfig(watch: parsed.has("w")) }
        follow(oneShot, path: "/zookeeper/config", removedType: "DataWatchRemoved")
        let text = String(decoding: data, as: UTF8.self)
        if parsed.has("c") {
            reply.out(Self.clientConfig(text))
        } else {
            reply.out(text)
        }
        reply.fields["config"] = text
        if parsed.has("s") {
            for line in Self.statLines(stat) { reply.out(line) }
            reply.fields["stat"] = Self.statJSON(stat)
        }
    }

    /// `ConfigUtils.getClientConfigStr`: the version and the members' client addresses.
    static func clientConfig(_ text: String) -> String {
        var version = ""
        var servers: [String] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "version" { version = parts[1] }
            guard parts[0].hasPrefix("server."), let semicolon = parts[1].firstIndex(of: ";") else { continue }
            var client = String(parts[1][parts[1].index(after: semicolon)...])
            if !client.contains(":") { client = "0.0.0.0:\(client)" }
            servers.append(client)
        }
        return "\(version) \(servers.joined(separator: ","))"
    }

    private func reconfig(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]"
        let parsed = try Self.parse(args, flags: ["s", "?"], valued: ["v", "file", "members", "add", "remove"], usage: usage)
        var members = parsed.values["members"]
        if let file = parsed.values["file"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ShellFailure("Cannot read \(file)") }
            members = text.split(separator: "\n").filter { $0.hasPrefix("server.") }.joined(separator: ",")
        }
        let joining = parsed.values["add"], leaving = parsed.values["remove"]
        if members == nil && joining == nil && leaving == nil { throw ShellFailure(usage) }
        if members != nil && (joining != nil || leaving != nil) {
            throw ShellFailure("Can't use -members or -file together with -add or -remove (mixing incremental and non-incremental modes is not allowed)")
        }
        var fromConfig: Int64 = -1
        if let text = parsed.values["v"] {
            guard let value = Int64(text.hasPrefix("0x") ? String(text.dropFirst(2)) : text, radix: 16) else {
                throw ShellFailure("-v must be followed by a long (configuration version)")
            }
            fromConfig = value
        }
        let client = try connected()
        let (data, stat) = try await Self.call("") {
            try await client.reconfig(joining: joining, leaving: leaving, newMembers: members, fromConfig: fromConfig)
        }
        let text = String(decoding: data, as: UTF8.self)
        reply.out("Committed new configuration:\n\(text)")
        reply.fields["config"] = text
        if parsed.has("s") {
            for line in Self.statLines(stat) { reply.out(line) }
            reply.fields["stat"] = Self.statJSON(stat)
        }
    }

    // MARK: Quotas (ZooKeeper's /zookeeper/quota layout, written with ordinary client calls)

    static let quotaRoot = "/zookeeper/quota"

    /// `StatsTrack` as ZooKeeper 3.8 writes it: `count=N,bytes=N`, then, when there are more keys,
    /// `=` and `;key=value` for each in name order (`count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1`).
    static func parseStats(_ text: String) -> [(String, Int64)] {
        text.split(whereSeparator: { $0 == "," || $0 == ";" }).compactMap { part in
            var pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { return nil }
            while pair[1].hasSuffix("=") { pair[1].removeLast() }
            guard let value = Int64(pair[1]) else { return nil }
            return (pair[0], value)
        }
    }

    static func formatStats(_ stats: [(String, Int64)]) -> String {
        let value = { (key: String) in stats.first { $0.0 == key }?.1 ?? -1 }
        var text = "count=\(value("count")),bytes=\(value("bytes"))"
        let rest = stats.filter { $0.0 != "count" && $0.0 != "bytes" }.sorted { $0.0 < $1.0 }
        if !rest.isEmpty {
            text += "="
            for (key, value) in rest { text += ";\(key)=\(value)" }
        }
        return text
    }

    private func listQuota(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "listquota path"
        let parsed = try Self.parse(args, flags: ["?"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let client = try connected()
        let limits = Self.quotaRoot + path + "/zookeeper_limits"
        do {
            reply.out("absolute path is \(limits)")
            let (quota, _) = try await client.getData(limits)
            let quotaText = Self.formatStats(Self.parseStats(String(decoding: quota, as: UTF8.self)))
            reply.out("Output quota for \(path) \(quotaText)")
            let (stats, _) = try await client.getData(Self.quotaRoot + path + "/zookeeper_stats")
            let statsText = Self.formatStats(Self.parseStats(String(decoding: stats, as: UTF8.self)))
            reply.out("Output stat for \(path) \(statsText)")
            reply.fields["quota"] = quotaText
            reply.fields["stat"] = statsText
        } catch ZooKeeperError.noNode {
            reply.err("quota for \(path) does not exist.")
        } catch let error as ZooKeeperError {
            throw ShellFailure(Self.message(for: error, path: path), code: error.code.name)
        }
        reply.fields["path"] = path
    }

    private func setQuota(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "setquota -n|-b|-N|-B val path"
        let parsed = try Self.parse(args, flags: ["?"], valued: ["n", "b", "N", "B"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let keys: [(String, String)] = [("n", "count"), ("b", "bytes"), ("N", "countHardLimit"), ("B", "byteHardLimit")]
        let given = keys.filter { parsed.values[$0.0] != nil }
        guard given.count == 1, let (option, key) = given.first else { throw ShellFailure(usage) }
        guard let value = Int64(parsed.values[option]!), value > 0 else {
            throw ShellFailure("\(key) must be a positive number: \(parsed.values[option]!)")
        }
        if path.hasPrefix(Self.quotaRoot) || path == "/zookeeper" { throw ShellFailure("cannot set a quota under the path: \(Self.quotaRoot)") }
        let client = try connected()
        do {
            guard try await client.exists(path) != nil else { throw ShellFailure("Node does not exist: \(path)", code: "NONODE") }
            var node = ""
            for part in (Self.quotaRoot + path).split(separator: "/") {
                node += "/\(part)"
                do { try await client.create(node) } catch ZooKeeperError.nodeExists {}
            }
            let limits = node + "/zookeeper_limits"
            var stats: [(String, Int64)] = [("count", -1), ("bytes", -1), ("countHardLimit", -1), ("byteHardLimit", -1)]
            if let (data, _) = try? await client.getData(limits) { stats = Self.parseStats(String(decoding: data, as: UTF8.self)) }
            stats.removeAll { $0.0 == key }
            stats.append((key, value))
            let text = Self.formatStats(stats)
            do {
                try await client.create(limits, data: Array(text.utf8))
            } catch ZooKeeperError.nodeExists {
                _ = try await client.setData(limits, data: Array(text.utf8))
            }
            let statsNode = node + "/zookeeper_stats"
            do { try await client.create(statsNode, data: Array("count=0,bytes=0".utf8)) } catch ZooKeeperError.nodeExists {}
            reply.fields["quota"] = text
        } catch let error as ZooKeeperError {
            throw ShellFailure(Self.message(for: error, path: path), code: error.code.name)
        }
        reply.fields["path"] = path
    }

    private func delQuota(_ args: [String], _ reply: inout ShellReply) async throws {
        let usage = "delquota [-n|-b|-N|-B] path"
        let parsed = try Self.parse(args, flags: ["n", "b", "N", "B", "?"], usage: usage)
        let path = try Self.path(parsed, usage: usage)
        let client = try connected()
        let node = Self.quotaRoot + path
        let limits = node + "/zookeeper_limits"
        do {
            guard try await client.exists(limits) != nil else {
                reply.out("Quota does not exist for \(path)")
                reply.fields["path"] = path
                return
            }
            let keys: [(String, String)] = [("n", "count"), ("b", "bytes"), ("N", "countHardLimit"), ("B", "byteHardLimit")]
            let given = keys.filter { parsed.has($0.0) }
            if given.isEmpty {
                for child in try await client.getChildren(node) { try await client.delete("\(node)/\(child)") }
                // Remove the now empty quota nodes up to the root, as ZooKeeper's trimProcQuotas.
                var current = node
                while current != Self.quotaRoot {
                    guard try await client.getChildren(current).isEmpty else { break }
                    try await client.delete(current)
                    current = String(current[..<current.lastIndex(of: "/")!])
                }
            } else {
                let (data, _) = try await client.getData(limits)
                var stats = Self.parseStats(String(decoding: data, as: UTF8.self))
                for (_, key) in given {
                    if let index = stats.firstIndex(where: { $0.0 == key }) { stats[index].1 = -1 }
                }
                _ = try await client.setData(limits, data: Array(Self.formatStats(stats).utf8))
            }
        } catch let error as ZooKeeperError {
            throw ShellFailure(Self.message(for: error, path: path), code: error.code.name)
        }
        reply.fields["path"] = path
    }

    // MARK: Shell-side commands

    private func history(_ reply: inout ShellReply) {
        var entries: [[String: Any]] = []
        for index in max(commandCount - 10, 0)...commandCount {
            let line = history[index] ?? "null"
            reply.out("\(index) - \(line)")
            entries.append(["index": index, "command": line])
        }
        reply.fields["history"] = entries
    }

    private func redo(_ args: [String], _ reply: inout ShellReply) async throws {
        guard let text = args.first, let index = Int(text), index >= 0, index < commandCount, let line = history[index] else {
            throw ShellFailure("Command index out of range")
        }
        let words = Self.split(line)
        if words.first == "redo" { throw ShellFailure("No redoing redos") }
        history[commandCount] = line
        try await dispatch(words[0], Array(words.dropFirst()), into: &reply)
    }

    private func printWatches(_ args: [String], _ reply: inout ShellReply) {
        if let setting = args.first {
            printer.printWatches = setting == "on"
        } else {
            reply.out("printwatches is \(printer.printWatches ? "on" : "off")")
        }
        reply.fields["printwatches"] = printer.printWatches
    }
}

/// The tasks that print watch events as they come.
enum ShellWatches {
    static func oneShot(_ watch: OneShotWatch, path: String, removedType: String, printer: ShellPrinter) async {
        do {
            let event = try await watch.event()
            printer.event(state: "SyncConnected", type: Shell.eventName(event.type), path: event.path)
        } catch let error as ZooKeeperError where error.code == .noWatcher {
            printer.event(state: "SyncConnected", type: removedType, path: path)
        } catch {}
    }

    static func persistent(_ watch: PersistentWatch, path: String, printer: ShellPrinter) async {
        do {
            for try await event in watch {
                printer.event(state: "SyncConnected", type: Shell.eventName(event.type), path: event.path)
            }
            printer.event(state: "SyncConnected", type: "PersistentWatchRemoved", path: path)
        } catch {}
    }
}
