import NIOCore
import XCTest
import ZKCore
import ZKProtocol

@testable import ZKStorage

/// The snapshot grammar: incremental encoding and decoding, whatever the chunk boundaries.
final class SnapshotCodecTests: XCTestCase {
    /// A tree with every kind of node, two ACLs, null and empty data, and two sessions.
    func sampleTree() -> DataTree {
        var tree = DataTree()
        var triggers: [WatchTrigger] = []
        let bodies: [TransactionBody] = [
            .createSession(timeoutMs: 4000),
            .create(path: "/a", data: Array("alpha".utf8), acl: ACL.openUnsafe, kind: .persistent),
            .create(path: "/a/e", data: nil, acl: ACL.openUnsafe, kind: .ephemeral(owner: 7)),
            .create(path: "/c", data: [], acl: ACL.readUnsafe, kind: .container),
            .create(path: "/t", data: [1, 2, 3], acl: ACL.openUnsafe, kind: .ttl(ms: 500)),
            .setData(path: "/a", data: Array("beta".utf8), version: 1),
        ]
        for (index, body) in bodies.enumerated() {
            let zxid = Int64(index + 1)
            tree.apply(Transaction(zxid: zxid, timeMs: 1000 + zxid, sessionId: 7, cxid: Int32(zxid), body: body), triggers: &triggers)
        }
        for index in 0..<50 {
            let zxid = Int64(bodies.count + index + 1)
            let body = TransactionBody.create(path: "/a/n\(index)", data: Array(repeating: UInt8(index), count: index), acl: ACL.openUnsafe, kind: .persistent)
            tree.apply(Transaction(zxid: zxid, timeMs: 2000, sessionId: 7, cxid: 0, body: body), triggers: &triggers)
        }
        return tree
    }

    func assertSameTree(_ decoded: DataTree, _ original: DataTree, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(decoded.sameNodes(as: original), file: file, line: line)
        XCTAssertEqual(decoded.sessions, original.sessions, file: file, line: line)
        XCTAssertEqual(decoded.lastZxid, original.lastZxid, file: file, line: line)
        XCTAssertEqual(decoded.ephemerals(of: 7), original.ephemerals(of: 7), file: file, line: line)
        XCTAssertEqual(decoded.digest, original.digest, file: file, line: line)
        XCTAssertEqual(decoded.dataBytes, original.dataBytes, file: file, line: line)
    }

    /// Strings are written as Java writes them (a character outside the BMP as two surrogates)
    /// and must read back whole, or a restored member holds other ACL ids (and paths) than the
    /// one that wrote the snapshot. Found by the release fuzzer's snapshot target.
    func testACharacterOutsideTheBMPReadsBackWhole() throws {
        var tree = DataTree()
        var triggers: [WatchTrigger] = []
        let acl = [ACL(perms: .all, id: Id(scheme: "sasl", id: "u\u{1F600}v"))]
        tree.apply(Transaction(zxid: 1, timeMs: 1, sessionId: 0, cxid: 0, body: .create(path: "/s", data: nil, acl: acl, kind: .persistent)), triggers: &triggers)
        tree.apply(Transaction(zxid: 2, timeMs: 1, sessionId: 0, cxid: 0, body: .create(path: "/s/x\u{5240B}", data: [1], acl: ACL.openUnsafe, kind: .persistent)), triggers: &triggers)
        for chunkBytes in [1 << 20, 7] {
            var chunks: [ByteBuffer] = []
            SnapshotCodec.encode(tree, chunkBytes: chunkBytes) { chunks.append($0) }
            var decoder = SnapshotDecoder()
            for chunk in chunks { try decoder.feed(chunk) }
            let decoded = try decoder.finish()
            assertSameTree(decoded, tree)
            XCTAssertEqual(decoded.node("/s")?.acl, acl)
            XCTAssertNotNil(decoded.node("/s/x\u{5240B}"))
        }
    }

    func testRoundTripInOneChunk() throws {
        let tree = sampleTree()
        var chunks: [ByteBuffer] = []
        SnapshotCodec.encode(tree, chunkBytes: 1 << 20) { chunks.append($0) }
        XCTAssertEqual(chunks.count, 1)
        var decoder = SnapshotDecoder()
        try decoder.feed(chunks[0])
        assertSameTree(try decoder.finish(), tree)
    }

    func testParallelDecodingBuildsTheSameTree() throws {
        let tree = sampleTree()
        var chunks: [ByteBuffer] = []
        SnapshotCodec.encode(tree, chunkBytes: 64) { chunks.append($0) }
        var decoder = SnapshotDecoder(parallel: true)
        for chunk in chunks { try decoder.feed(chunk) }
        assertSameTree(try decoder.finish(), tree)
        // A decoder given up on part-way lets its thread go.
        var abandoned = SnapshotDecoder(parallel: true)
        try abandoned.feed(chunks[0])
        abandoned.abandon()
    }

    func testSnapshotsListNodesInPreorder() throws {
        let tree = sampleTree()
        var paths: [String] = []
        tree.forEachNode { path, _ in paths.append(path) }
        XCTAssertEqual(paths.count, tree.nodeCount)
        for (index, path) in paths.enumerated() where path != "/" {
            let parent = path.split(separator: "/").dropLast().joined(separator: "/")
            let parentIndex = paths.firstIndex(of: "/" + parent)
            XCTAssertNotNil(parentIndex, path)
            XCTAssertLessThan(parentIndex ?? .max, index, "\(path) before its parent")
        }
    }

    func testChunksEndOnNodeBoundariesAndDecodeOneByOne() throws {
        let tree = sampleTree()
        var chunks: [ByteBuffer] = []
        SnapshotCodec.encode(tree, chunkBytes: 100) { chunks.append($0) }
        XCTAssertGreaterThan(chunks.count, 10)
        var decoder = SnapshotDecoder()
        for chunk in chunks { try decoder.feed(chunk) }
        assertSameTree(try decoder.finish(), tree)
    }

    /// The decoder does not rely on chunk boundaries: fed a byte at a time it gives the same tree.
    func testByteByByteFeeding() throws {
        let tree = sampleTree()
        var whole = ByteBuffer()
        SnapshotCodec.encode(tree, chunkBytes: 64) { chunk in
            var chunk = chunk
            whole.writeBuffer(&chunk)
        }
        var decoder = SnapshotDecoder()
        for index in 0..<whole.readableBytes {
            try decoder.feed(whole.getSlice(at: whole.readerIndex + index, length: 1)!)
        }
        assertSameTree(try decoder.finish(), tree)
    }

    func testEveryTruncationIsRefused() throws {
        var whole = ByteBuffer()
        SnapshotCodec.encode(DataTree(), chunkBytes: 1 << 20) { chunk in
            var chunk = chunk
            whole.writeBuffer(&chunk)
        }
        for cut in 0..<whole.readableBytes {
            var decoder = SnapshotDecoder()
            XCTAssertThrowsError(try { () throws in
                try decoder.feed(whole.getSlice(at: 0, length: cut)!)
                _ = try decoder.finish()
            }(), "cut at \(cut)")
        }
    }

    func testTrailingBytesAreRefused() throws {
        var whole = ByteBuffer()
        SnapshotCodec.encode(sampleTree()) { chunk in
            var chunk = chunk
            whole.writeBuffer(&chunk)
        }
        whole.writeInteger(UInt8(0))
        XCTAssertThrowsError(try SnapshotCodec.decode(&whole))
    }

    func testDecodedNodesShareOneACLArray() throws {
        var whole = ByteBuffer()
        SnapshotCodec.encode(sampleTree()) { chunk in
            var chunk = chunk
            whole.writeBuffer(&chunk)
        }
        let tree = try SnapshotCodec.decode(&whole)
        let first = tree.node("/a/n1")!.acl
        let second = tree.node("/a/n2")!.acl
        first.withUnsafeBufferPointer { one in
            second.withUnsafeBufferPointer { two in XCTAssertEqual(one.baseAddress, two.baseAddress) }
        }
    }

    /// Golden bytes of the smallest snapshot: the header and the first fields of a node.
    func testHeaderGoldenBytes() {
        var encoder = SnapshotEncoder(DataTree(), chunkBytes: 1)
        let chunk = encoder.nextChunk()!
        let bytes = Array(chunk.readableBytesView.prefix(24))
        XCTAssertEqual(
            bytes,
            [0x4D, 0x5A, 0x4B, 0x53, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "magic MZKS, version 1, zxid 0, no sessions")
    }

    func testCRC32CKnownValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var bytewise: UInt32 = ~0
        for byte in long {
            bytewise ^= UInt32(byte)
            for _ in 0..<8 { bytewise = bytewise & 1 == 1 ? (bytewise >> 1) ^ 0x82F6_3B78 : bytewise >> 1 }
        }
        XCTAssertEqual(CRC32C.checksum(long), ~bytewise)
    }
}
