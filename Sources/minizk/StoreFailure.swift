import ArgumentParser
import Glibc
import Logging
import NIOCore
import ZKServer
import ZKStorage

/// What a server command does when its store fails while it serves (a full disk, a device that
/// refuses writes, a file system remounted read-only).
enum StoreFailurePolicy: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Keep the process and its client port: four-letter words are answered (`mntr` says why
    /// nothing else is), the store is closed, and opened again every `--store-retry-ms` until a
    /// replica recovers from it and serves again, catching up from the others.
    case retry
    /// End the process with status 1, as ZooKeeper does, for a supervisor to act on.
    case exit
}

/// A running server and how to stop what was started around it (metrics, admin server, console).
struct Incarnation {
    var server: MiniZKServer
    var stopAround: () async -> Void
}

/// Serves until SIGINT or SIGTERM, or until the store fails under `StoreFailurePolicy.exit`.
/// Under `.retry`, a failed store is closed (releasing its files, so the file system can be
/// repaired) while the failed server keeps its port for four-letter words; every `retryMs` the
/// store is opened again, and once that works the failed server is shut down and `restart` starts
/// a new one on the same ports (if that fails too, the port stays closed until the next attempt
/// works). Returns why it stopped; the server is shut down by then.
func serveRetryingTheStore(
    policy: StoreFailurePolicy, retryMs: Int, logger: Logger, signals: TerminationSignals,
    first: Incarnation, store firstStore: SQLiteStore?,
    reopen: () throws -> SQLiteStore,
    restart: (SQLiteStore, _ ports: (client: Int, secure: Int?)) async throws -> Incarnation
) async throws -> StopReason {
    var running: Incarnation? = first
    var store = firstStore
    let ports = (client: first.server.localPort, secure: first.server.secureLocalPort)
    func shutDown() async throws {
        guard let incarnation = running else { return }
        running = nil
        await incarnation.stopAround()
        try await incarnation.server.shutdown()
    }
    while true {
        running?.server.whenStoreFails { reason in signals.storeFailed(reason) }
        let stop = await signals.wait()
        guard case .storeFailed(let reason) = stop, policy == .retry, store != nil else {
            try await shutDown()
            return stop
        }
        logger.error("the store failed: serving nothing until it can be opened again", metadata: [
            "reason": "\(reason)", "retryMs": "\(retryMs)",
        ])
        try? await running?.server.storeReleased()
        store?.close()
        store = nil
        signals.clearStoreFailure()
        var attempts = 0
        while store == nil {
            if let stop = await signals.wait(timeoutMs: retryMs) {
                try await shutDown()
                return stop
            }
            attempts += 1
            let opened: SQLiteStore
            do {
                opened = try reopen()
            } catch {
                logger.warning("the store still cannot be opened", metadata: ["attempt": "\(attempts)", "error": "\(error)"])
                continue
            }
            try await shutDown()
            do {
                running = try await restart(opened, ports)
                store = opened
            } catch {
                logger.warning("the store opened, but no replica could start from it", metadata: [
                    "attempt": "\(attempts)", "error": "\(error)",
                ])
                opened.close()
            }
        }
        logger.notice("store opened again: the replica recovered from it and serves", metadata: [
            "attempts": "\(attempts)", "port": "\(ports.client)",
        ])
    }
}

/// Binds a port that a server just shut down may still hold for a moment (its listener's close
/// completes asynchronously): a bind refused with "address in use" is tried again, for a second.
func listenRetryingWhileInUse(_ bind: () async throws -> Void) async throws {
    var attempt = 0
    while true {
        do {
            return try await bind()
        } catch let error as IOError where error.errnoCode == EADDRINUSE && attempt < 20 {
            attempt += 1
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
