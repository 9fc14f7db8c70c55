import ArgumentParser
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Measures the floor a disk puts under a durable write: how long an overwrite of one 4 KiB block
/// followed by `fdatasync` takes alone, and how long it takes when several files are made durable
/// at the same moment, as the members of an ensemble on one machine do for every write.
///
/// For `--files N` each round starts N writers together (each on its own thread and file) and
/// records when the first, the second, ... the last of them is durable. The second is what a
/// three-member quorum waits for.
struct DiskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disk",
        abstract: "Measure fdatasync latency of a directory's disk, alone and several files at once (the floor of a durable write)."
    )

    @Option(help: "Directory to measure (its files are removed afterwards).")
    var dir: String = "."

    @Option(help: "Most files made durable at once; every count from 1 up to it is measured.")
    var files: Int = 3

    @Option(help: "Rounds per file count.")
    var rounds: Int = 2000

    @Flag(help: "Print one line of JSON instead of text.")
    var json = false

    func validate() throws {
        guard (1...16).contains(files) else { throw ValidationError("--files must be 1...16") }
        guard rounds >= 10 else { throw ValidationError("--rounds must be at least 10") }
    }

    func run() throws {
        var results: [[String: Double]] = []
        for count in 1...files {
            let probe = try DiskProbe(directory: dir, files: count)
            defer { probe.remove() }
            let completions = probe.measure(rounds: rounds)
            var figures: [String: Double] = ["files": Double(count)]
            for (rank, samples) in completions.enumerated() {
                figures["done_\(rank + 1)_p50_ms"] = percentile(samples, 0.50) * 1e3
                figures["done_\(rank + 1)_p99_ms"] = percentile(samples, 0.99) * 1e3
            }
            results.append(figures)
            if !json {
                let ranks = completions.indices.map { rank in
                    String(format: "#%d %.3f / %.3f", rank + 1, figures["done_\(rank + 1)_p50_ms"]!, figures["done_\(rank + 1)_p99_ms"]!)
                }
                printLine("\(count) file\(count == 1 ? "" : "s") at once, durable (p50 / p99 ms): " + ranks.joined(separator: ", "))
            }
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["dir": dir, "rounds": rounds, "results": results], options: [.sortedKeys])
            printLine(String(decoding: data, as: UTF8.self))
        }
    }
}

/// N files, each with a thread that overwrites a block and syncs it when its round starts.
private final class DiskProbe: @unchecked Sendable {
    private static let blockBytes = 4096
    private static let blocksPerFile = 1024

    private let descriptors: [Int32]
    private let paths: [String]
    private let block: UnsafeMutableRawPointer
    private let starts: [DispatchSemaphore]
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    // Guarded by `lock` while a round runs.
    private var doneAt: [UInt64]
    private var offset: Int = 0
    private var stopping = false

    init(directory: String, files: Int) throws {
        block = UnsafeMutableRawPointer.allocate(byteCount: Self.blockBytes, alignment: Self.blockBytes)
        memset(block, 0x5a, Self.blockBytes)
        var descriptors: [Int32] = []
        var paths: [String] = []
        for index in 0..<files {
            let path = (directory as NSString).appendingPathComponent(".minizk-disk-\(getpid())-\(index)")
            let descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                for opened in descriptors { close(opened) }
                for created in paths { unlink(created) }
                throw ValidationError("cannot create \(path): \(String(cString: strerror(errno)))")
            }
            // Written and synced once, so that the rounds overwrite allocated blocks (as a log
            // that is reused does) rather than grow the file.
            for blockIndex in 0..<Self.blocksPerFile {
                _ = pwrite(descriptor, block, Self.blockBytes, off_t(blockIndex * Self.blockBytes))
            }
            fsync(descriptor)
            descriptors.append(descriptor)
            paths.append(path)
        }
        self.descriptors = descriptors
        self.paths = paths
        self.starts = descriptors.map { _ in DispatchSemaphore(value: 0) }
        self.doneAt = Array(repeating: 0, count: files)
    }

    /// Runs `rounds` rounds; element k of the result holds, per round, the seconds until k + 1
    /// files were durable.
    func measure(rounds: Int) -> [[Double]] {
        let count = descriptors.count
        var threads: [Thread] = []
        for index in 1..<count {
            let thread = Thread { [self] in
                while true {
                    starts[index].wait()
                    lock.lock()
                    let stop = stopping
                    lock.unlock()
                    if stop { return }
                    writeBlock(index)
                    finished.signal()
                }
            }
            thread.start()
            threads.append(thread)
        }
        var completions = Array(repeating: [Double](), count: count)
        for round in 0..<rounds {
            lock.lock()
            offset = (round % Self.blocksPerFile) * Self.blockBytes
            lock.unlock()
            let began = DispatchTime.now().uptimeNanoseconds
            for index in 1..<count { starts[index].signal() }
            // The first file is written by this thread, as the event loop writes a lone append.
            writeBlock(0)
            for _ in 1..<count { finished.wait() }
            lock.lock()
            let times = doneAt.map { Double($0 - began) / 1e9 }.sorted()
            lock.unlock()
            for (rank, seconds) in times.enumerated() { completions[rank].append(seconds) }
        }
        lock.lock()
        stopping = true
        lock.unlock()
        for index in 1..<count { starts[index].signal() }
        return completions
    }

    private func writeBlock(_ index: Int) {
        lock.lock()
        let at = off_t(offset)
        lock.unlock()
        _ = pwrite(descriptors[index], block, Self.blockBytes, at)
        #if canImport(Darwin)
        _ = fsync(descriptors[index])
        #else
        _ = fdatasync(descriptors[index])
        #endif
        let now = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        doneAt[index] = now
        lock.unlock()
    }

    /// Closes and deletes the files.
    func remove() {
        for descriptor in descriptors { close(descriptor) }
        for path in paths { unlink(path) }
        block.deallocate()
    }
}
