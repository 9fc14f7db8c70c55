import XCTest
@testable import ZKRecipesCore

final class EncodingTests: XCTestCase {
    func testSortKeyIsWhatFollowsTheLastLockName() {
        XCTAssertEqual(CuratorNames.sortKey("_c_1234-lock-0000000042", lockName: "lock-"), "0000000042")
        // A UUID that happens to contain the lock name does not confuse it.
        XCTAssertEqual(CuratorNames.sortKey("_c_lock--lock-0000000007", lockName: "lock-"), "0000000007")
        XCTAssertEqual(CuratorNames.sortKey("ready", lockName: "lock-"), "ready")
        XCTAssertEqual(CuratorNames.sorted(["_c_b-lock-0000000002", "_c_a-lock-0000000003", "_c_c-lock-0000000001"], lockName: "lock-"),
                       ["_c_c-lock-0000000001", "_c_b-lock-0000000002", "_c_a-lock-0000000003"])
        XCTAssertEqual(CuratorNames.sequence(of: "/x/_c_a-lock-0000000042"), 42)
        XCTAssertNil(CuratorNames.sequence(of: "/x/ready"))
    }

    func testPaths() {
        XCTAssertEqual(CuratorNames.ancestors("/a/b/c"), ["/a", "/a/b"])
        XCTAssertEqual(CuratorNames.ancestors("/a"), [])
        XCTAssertEqual(CuratorNames.join("/", "a"), "/a")
        XCTAssertEqual(CuratorNames.protectedPath(base: "/l", uuid: "u", name: "lock-"), "/l/_c_u-lock-")
    }

    func testSeededUUIDsAreDeterministicAndJavaShaped() {
        var a = SeededUUIDs(seed: 7), b = SeededUUIDs(seed: 7)
        let first = a.next()
        XCTAssertEqual(first, b.next())
        XCTAssertNotEqual(first, a.next())
        XCTAssertEqual(first.count, 36)
        XCTAssertEqual(first.split(separator: "-").map(\.count), [8, 4, 4, 4, 12])
        XCTAssertEqual(first, first.lowercased())
        XCTAssertEqual(first[first.index(first.startIndex, offsetBy: 14)], "4")
    }

    /// Seeds a SplitMix64 gamma apart (how the simulator once seeded a program's incarnations)
    /// share no UUID.
    func testSeededUUIDsOfNeighbouringSeedsNeverCoincide() {
        let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
        var seen: Set<String> = []
        for incarnation: UInt64 in 0..<8 {
            var uuids = SeededUUIDs(seed: 42 &+ incarnation &* gamma)
            for _ in 0..<16 { XCTAssertTrue(seen.insert(uuids.next()).inserted, "incarnation \(incarnation) repeats a UUID") }
        }
    }

    func testAtomicLongEncoding() {
        // DistributedAtomicLong: ByteBuffer.putLong, big-endian.
        XCTAssertEqual(CuratorValues.encodeLong(1), [0, 0, 0, 0, 0, 0, 0, 1])
        XCTAssertEqual(CuratorValues.encodeLong(-2), [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE])
        XCTAssertEqual(CuratorValues.encodeLong(0x0102_0304_0506_0708), [1, 2, 3, 4, 5, 6, 7, 8])
        for value: Int64 in [0, 1, -1, .max, .min, 123_456_789_012] {
            XCTAssertEqual(CuratorValues.decodeLong(CuratorValues.encodeLong(value)), value)
        }
        XCTAssertEqual(CuratorValues.decodeLong([]), 0)
        XCTAssertNil(CuratorValues.decodeLong([1, 2, 3]))
    }

    func testSharedCountEncoding() {
        XCTAssertEqual(CuratorValues.encodeInt(258), [0, 0, 1, 2])
        XCTAssertEqual(CuratorValues.decodeInt([0xFF, 0xFF, 0xFF, 0xFF]), -1)
        XCTAssertNil(CuratorValues.decodeInt([]))
    }

    func testOptimisticPlan() {
        XCTAssertEqual(OptimisticWrite.plan(read: nil, newValue: [1]), .create([1]))
        XCTAssertEqual(OptimisticWrite.plan(read: ([0], 4), newValue: [1]), .setData([1], version: 4))
    }

    func testQueueItemFraming() {
        // ItemSerializer: version 0x00010001, (1, length, bytes)*, 2.
        XCTAssertEqual(QueueItemCodec.encode([[0x41]]), [0, 1, 0, 1, 1, 0, 0, 0, 1, 0x41, 2])
        XCTAssertEqual(QueueItemCodec.encode([]), [0, 1, 0, 1, 2])
        let messages: [[UInt8]] = [[1, 2, 3], [], Array("hello".utf8)]
        XCTAssertEqual(QueueItemCodec.decode(QueueItemCodec.encode(messages)), messages)
        XCTAssertNil(QueueItemCodec.decode([0, 1, 0, 2, 2]))
        XCTAssertNil(QueueItemCodec.decode([0, 1, 0, 1, 1, 0, 0, 0, 9, 1]))
        XCTAssertEqual(QueueItemCodec.ordered(["queue-0000000002", "lock", "queue-0000000001"]), ["queue-0000000001", "queue-0000000002"])
    }

    func testPriorityPrefixSortsLikeCurator() {
        XCTAssertEqual(QueueItemCodec.priorityPrefix(0), "100000000")
        XCTAssertEqual(QueueItemCodec.priorityPrefix(10), "10000000A")
        XCTAssertEqual(QueueItemCodec.priorityPrefix(-1), "0FFFFFFFF")
        let priorities: [Int32] = [5, -3, 0, .min, .max, -1]
        let sorted = priorities.sorted { QueueItemCodec.priorityPrefix($0) < QueueItemCodec.priorityPrefix($1) }
        XCTAssertEqual(sorted, priorities.sorted())
    }
}
