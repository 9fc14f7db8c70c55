import ZKProtocol

/// The two example jobs, as pure functions: a job is map → shuffle → reduce over an input made
/// from a seed, so that no input has to be shipped through ZooKeeper and every process (and the
/// single-process check) computes the same thing.
///
/// Word count: map task i counts the words of its slice of the corpus and splits the counts into
/// `reduces` partitions by a hash of the word; reduce task r adds partition r of every map
/// output. Sort: map task i draws its numbers and splits them into `reduces` ranges; reduce task r
/// sorts range r, so that the reduce outputs in order are the whole input sorted.
///
/// Formats (UTF-8 lines):
///     map output      "<partition>\t<word>\t<count>" (word count), "<partition>\t<number>" (sort)
///     reduce output   "<word>\t<count>" sorted by word (word count), "<number>" ascending (sort)
///     job result      the reduce outputs joined in partition order (word count: merged and sorted)
public enum JobKind: String, Sendable, Hashable, CaseIterable {
    case wordcount
    case sort
}

public struct JobSpec: Sendable, Hashable {
    public var id: String
    public var kind: JobKind
    public var seed: UInt64
    public var maps: Int
    public var reduces: Int
    /// Words (word count) or numbers (sort) per map task.
    public var recordsPerMap: Int

    /// Limits that keep every node well under ZooKeeper's 1 MB.
    public static let mapsMax = 256
    public static let reducesMax = 64
    public static let recordsPerMapMax = 20_000

    public init(id: String, kind: JobKind, seed: UInt64 = 1, maps: Int = 8, reduces: Int = 4, recordsPerMap: Int = 2000) {
        precondition(Self.isValidID(id), "job id must be [A-Za-z0-9_-]+: \(id)")
        self.id = id
        self.kind = kind
        self.seed = seed
        self.maps = min(max(maps, 1), Self.mapsMax)
        self.reduces = min(max(reduces, 1), Self.reducesMax)
        self.recordsPerMap = min(max(recordsPerMap, 1), Self.recordsPerMapMax)
    }

    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.count <= 64 && id.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "_" || $0 == "-" }
    }

    public func tasks(_ stage: Stage) -> [TaskID] {
        (0..<(stage == .map ? maps : reduces)).map { TaskID(stage, $0) }
    }

    public var encoded: [UInt8] {
        KeyValues.encode([
            ("id", id), ("kind", kind.rawValue), ("seed", String(seed)), ("maps", String(maps)),
            ("reduces", String(reduces)), ("recordsPerMap", String(recordsPerMap)),
        ])
    }

    public init?(_ bytes: [UInt8]) {
        let values = KeyValues.decode(bytes)
        guard let id = values["id"], Self.isValidID(id), let kind = values["kind"].flatMap(JobKind.init(rawValue:)),
              let seed = values["seed"].flatMap({ UInt64($0) }), let maps = values["maps"].flatMap({ Int($0) }),
              let reduces = values["reduces"].flatMap({ Int($0) }), let records = values["recordsPerMap"].flatMap({ Int($0) })
        else { return nil }
        self.init(id: id, kind: kind, seed: seed, maps: maps, reduces: reduces, recordsPerMap: records)
    }
}

/// A job's state in `master_status/app_<job>`: the spec plus `state=running|finished|failed`.
public enum JobState: String, Sendable, Hashable {
    case running
    case finished
    case failed

    public static func of(_ bytes: [UInt8]) -> JobState { KeyValues.decode(bytes)["state"].flatMap(JobState.init(rawValue:)) ?? .running }
    public static func encode(_ spec: JobSpec, _ state: JobState, reason: String? = nil) -> [UInt8] {
        var bytes = spec.encoded + Array("\nstate=\(state.rawValue)".utf8)
        if let reason { bytes += Array("\nreason=\(reason)".utf8) }
        return bytes
    }
}

public enum Jobs {
    static let syllables = ["ka", "lo", "mi", "zu", "re", "ta", "no", "shi", "ve", "pa", "du", "gri", "o", "an", "el", "ux"]

    /// The words of map task `index`'s slice of the corpus.
    public static func words(_ spec: JobSpec, map index: Int) -> [String] {
        var generator = SplitMix64(seed: spec.seed &* 0x9E37_79B9 &+ UInt64(index) &+ 1)
        return (0..<spec.recordsPerMap).map { _ in
            // Two draws, the smaller kept: common words are common, as in text.
            let a = generator.next() % 400, b = generator.next() % 400
            var n = Int(min(a, b))
            var word = ""
            repeat {
                word += syllables[n % syllables.count]
                n /= syllables.count
            } while n > 0
            return word
        }
    }

    public static let sortRange: UInt64 = 1_000_000

    /// The numbers of map task `index` (sort).
    public static func numbers(_ spec: JobSpec, map index: Int) -> [UInt64] {
        var generator = SplitMix64(seed: spec.seed &* 0xC2B2_AE35 &+ UInt64(index) &+ 7)
        return (0..<spec.recordsPerMap).map { _ in generator.next() % sortRange }
    }

    /// FNV-1a: the partition of a word (stable across processes, unlike `hashValue`).
    public static func fnv(_ bytes: some Sequence<UInt8>) -> UInt64 {
        bytes.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
    }

    public static func partition(_ word: String, _ spec: JobSpec) -> Int { Int(fnv(word.utf8) % UInt64(spec.reduces)) }
    public static func partition(_ number: UInt64, _ spec: JobSpec) -> Int { Int(number * UInt64(spec.reduces) / sortRange) }

    public static func mapOutput(_ spec: JobSpec, map index: Int) -> [UInt8] {
        var lines: [String] = []
        switch spec.kind {
        case .wordcount:
            var counts: [String: Int] = [:]
            for word in words(spec, map: index) { counts[word, default: 0] += 1 }
            lines = counts.keys.sorted().map { "\(partition($0, spec))\t\($0)\t\(counts[$0]!)" }
        case .sort:
            lines = numbers(spec, map: index).map { "\(partition($0, spec))\t\($0)" }
        }
        return Array(lines.joined(separator: "\n").utf8)
    }

    /// Reduce task `index` over every map output (in any order: the result does not depend on it).
    public static func reduceOutput(_ spec: JobSpec, reduce index: Int, mapOutputs: [[UInt8]]) -> [UInt8] {
        let wanted = String(index)
        switch spec.kind {
        case .wordcount:
            var counts: [String: Int] = [:]
            for output in mapOutputs {
                for line in String(decoding: output, as: UTF8.self).split(separator: "\n") {
                    let fields = line.split(separator: "\t")
                    guard fields.count == 3, fields[0] == wanted, let count = Int(fields[2]) else { continue }
                    counts[String(fields[1]), default: 0] += count
                }
            }
            return Array(counts.keys.sorted().map { "\($0)\t\(counts[$0]!)" }.joined(separator: "\n").utf8)
        case .sort:
            var values: [UInt64] = []
            for output in mapOutputs {
                for line in String(decoding: output, as: UTF8.self).split(separator: "\n") {
                    let fields = line.split(separator: "\t")
                    guard fields.count == 2, fields[0] == wanted, let value = UInt64(fields[1]) else { continue }
                    values.append(value)
                }
            }
            return Array(values.sorted().map(String.init).joined(separator: "\n").utf8)
        }
    }

    /// The job's result from its reduce outputs, in partition order.
    public static func result(_ spec: JobSpec, reduceOutputs: [[UInt8]]) -> [UInt8] {
        precondition(reduceOutputs.count == spec.reduces, "\(reduceOutputs.count) reduce outputs for \(spec.reduces) reduces")
        switch spec.kind {
        case .wordcount:
            let lines = reduceOutputs.flatMap { String(decoding: $0, as: UTF8.self).split(separator: "\n") }.map(String.init)
            return Array(lines.sorted().joined(separator: "\n").utf8)
        case .sort:
            let lines = reduceOutputs.map { String(decoding: $0, as: UTF8.self) }.filter { !$0.isEmpty }
            return Array(lines.joined(separator: "\n").utf8)
        }
    }

    /// The same job computed in one process, without maps, partitions or reduces: the reference.
    public static func singleProcess(_ spec: JobSpec) -> [UInt8] {
        switch spec.kind {
        case .wordcount:
            var counts: [String: Int] = [:]
            for index in 0..<spec.maps { for word in words(spec, map: index) { counts[word, default: 0] += 1 } }
            return Array(counts.keys.sorted().map { "\($0)\t\(counts[$0]!)" }.joined(separator: "\n").utf8)
        case .sort:
            let all = (0..<spec.maps).flatMap { numbers(spec, map: $0) }.sorted()
            return Array(all.map(String.init).joined(separator: "\n").utf8)
        }
    }

    /// A short digest of a result, for observations and the CLI.
    public static func digest(_ bytes: [UInt8]) -> String {
        let text = String(fnv(bytes), radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }
}
