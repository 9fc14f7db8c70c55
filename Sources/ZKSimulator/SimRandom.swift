import ZKProtocol

/// The simulator's only source of randomness: a seeded generator (xoshiro256**), so that one
/// seed determines every choice of a run.
///
/// Independent parts of a run (the network, the disks, each client, the nemesis) draw from
/// their own streams, `derive`d from the run's seed and a label. Adding a draw in one part then
/// does not shift what every other part sees, which keeps seeds comparable across small changes
/// of the simulator.
public struct SimRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    public init(seed: UInt64) {
        var mixer = SplitMix64(seed: seed)
        s0 = mixer.next()
        s1 = mixer.next()
        s2 = mixer.next()
        s3 = mixer.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A stream for one part of the run, independent of the others.
    public static func derive(_ seed: UInt64, _ label: String) -> SimRandom {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in label.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        var mixer = SplitMix64(seed: seed ^ hash)
        return SimRandom(seed: mixer.next())
    }

    /// A uniformly drawn integer in `range` (both ends included).
    public mutating func int<T: FixedWidthInteger & SignedInteger>(_ range: ClosedRange<T>) -> T {
        let low = Int64(range.lowerBound)
        let span = UInt64(bitPattern: Int64(range.upperBound) &- low)
        if span == .max { return T(truncatingIfNeeded: next()) }
        return T(low &+ Int64(bitPattern: below(span + 1)))
    }

    /// Uniform in 0..<bound, without modulo bias (Lemire's method).
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "below(0)")
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }

    /// A double in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { p > 0 && unit() < p }

    public mutating func pick<C: Collection>(_ items: C) -> C.Element where C.Index == Int {
        precondition(!items.isEmpty, "pick from an empty collection")
        return items[items.startIndex + Int(below(UInt64(items.count)))]
    }

    /// An index drawn with the given (non-negative) weights.
    public mutating func weighted(_ weights: [Int]) -> Int {
        let total = weights.reduce(0, +)
        precondition(total > 0, "weighted pick with no weight")
        var roll = Int(below(UInt64(total)))
        for (index, weight) in weights.enumerated() {
            if roll < weight { return index }
            roll -= weight
        }
        return weights.count - 1
    }
}

/// A distribution of delays in milliseconds: uniform in `minMs...maxMs`, and with probability
/// `spikeProbability` an extra delay uniform in `1...spikeMaxMs` (a slow packet, a slow fsync).
public struct LatencyModel: Sendable, Hashable, CustomStringConvertible {
    public var minMs: Int64
    public var maxMs: Int64
    public var spikeProbability: Double
    public var spikeMaxMs: Int64

    public init(minMs: Int64, maxMs: Int64, spikeProbability: Double = 0, spikeMaxMs: Int64 = 0) {
        precondition(minMs >= 0 && maxMs >= minMs, "latency \(minMs)...\(maxMs)")
        self.minMs = minMs
        self.maxMs = maxMs
        self.spikeProbability = spikeProbability
        self.spikeMaxMs = spikeMaxMs
    }

    public static func fixed(_ ms: Int64) -> LatencyModel { LatencyModel(minMs: ms, maxMs: ms) }

    public func sample(_ random: inout SimRandom) -> Int64 {
        var delay = minMs == maxMs ? minMs : random.int(minMs...maxMs)
        if spikeProbability > 0, spikeMaxMs > 0, random.chance(spikeProbability) { delay += random.int(1...spikeMaxMs) }
        return delay
    }

    public var description: String {
        let base = minMs == maxMs ? "\(minMs)ms" : "\(minMs)-\(maxMs)ms"
        return spikeProbability > 0 ? "\(base) (+≤\(spikeMaxMs)ms p=\(formatProbability(spikeProbability)))" : base
    }
}

func formatProbability(_ p: Double) -> String {
    let scaled = (p * 10_000).rounded() / 10_000
    return "\(scaled)"
}
