import XCTest
import ZKProtocol

@testable import ZKCore

final class DataTreeRestoreTests: XCTestCase {
    func built() -> DataTree {
        var tree = DataTree()
        var triggers: [WatchTrigger] = []
        let bodies: [TransactionBody] = [
            .createSession(timeoutMs: 4000),
            .create(path: "/a", data: [1], acl: ACL.openUnsafe, kind: .persistent),
            .create(path: "/a/b", data: [2, 3], acl: ACL.openUnsafe, kind: .container),
            .create(path: "/a/e", data: nil, acl: ACL.openUnsafe, kind: .ephemeral(owner: 9)),
            .create(path: "/t", data: [], acl: ACL.readUnsafe, kind: .ttl(ms: 5)),
        ]
        for (index, body) in bodies.enumerated() {
            tree.apply(Transaction(zxid: Int64(index + 1), timeMs: 7, sessionId: 9, cxid: 1, body: body), triggers: &triggers)
        }
        return tree
    }

    func parts(_ tree: DataTree) -> [(path: String, node: DataNode)] {
        tree.allNodes
    }

    func testRestoringRebuildsChildrenAndIndexes() throws {
        let tree = built()
        let restored = try XCTUnwrap(DataTree(restoring: parts(tree), sessions: [(9, 4000)], lastZxid: tree.lastZxid))
        XCTAssertTrue(restored.sameNodes(as: tree))
        XCTAssertEqual(restored.nodeCount, tree.nodeCount)
        XCTAssertEqual(restored.digest, tree.digest)
        XCTAssertEqual(restored.ephemerals(of: 9), ["/a/e"])
        XCTAssertEqual(restored.containers, ["/a/b"])
        XCTAssertEqual(restored.ttlNodes, ["/t"])
        XCTAssertEqual(restored.dataBytes, tree.dataBytes)
    }

    func testNodesThatDoNotFormATreeAreRefused() {
        let tree = built()
        let orphan = parts(tree).filter { $0.path != "/a" }
        XCTAssertNil(DataTree(restoring: orphan, sessions: [], lastZxid: 5), "a child without its parent")
        let noRoot = parts(tree).filter { $0.path != "/" }
        XCTAssertNil(DataTree(restoring: noRoot, sessions: [], lastZxid: 5), "no root")
        let repeated = parts(tree) + [parts(tree).first { $0.path == "/a/b" }!]
        XCTAssertNil(DataTree(restoring: repeated, sessions: [], lastZxid: 5), "a path twice")
    }

    /// A tree with nested levels, sequential names and names longer than a small string.
    func deep() -> DataTree {
        var tree = DataTree()
        var triggers: [WatchTrigger] = []
        var zxid: Int64 = 0
        func create(_ path: String, _ data: [UInt8]?) {
            zxid += 1
            tree.apply(
                Transaction(zxid: zxid, timeMs: zxid * 10, sessionId: 1, cxid: 1,
                    body: .create(path: path, data: data, acl: ACL.openUnsafe, kind: .persistent)), triggers: &triggers)
        }
        for a in 0..<5 {
            create("/level-one-\(a)", [UInt8(a)])
            create("/level-one-\(a)-sibling", nil)
            for b in 0..<7 {
                create("/level-one-\(a)/b\(b)", Array(repeating: UInt8(b), count: b * 30))
                for c in 0..<3 { create("/level-one-\(a)/b\(b)/a-rather-long-child-name-\(c)", []) }
            }
        }
        return tree
    }

    func testRestoringInAnyOrderGivesTheSameTree() throws {
        let tree = deep()
        let preorder = { () -> [(path: String, node: DataNode)] in
            var nodes: [(path: String, node: DataNode)] = []
            tree.forEachNode { nodes.append(($0, $1)) }
            return nodes
        }()
        XCTAssertEqual(preorder.first?.path, "/")
        // A fixed scramble: position i takes node (i * 37) mod n (37 is prime to the node count).
        XCTAssertNotEqual(preorder.count % 37, 0)
        let scrambled = preorder.indices.map { preorder[($0 * 37) % preorder.count] }
        for order in [preorder, Array(preorder.reversed()), tree.allNodes, scrambled] {
            let restored = try XCTUnwrap(DataTree(restoring: order, sessions: [], lastZxid: tree.lastZxid))
            XCTAssertTrue(restored.sameNodes(as: tree))
            XCTAssertEqual(restored.digest, tree.digest)
            XCTAssertEqual(restored.nodeCount, tree.nodeCount)
            XCTAssertEqual(restored.dataBytes, tree.dataBytes)
            XCTAssertEqual(restored.node("/level-one-3/b4")?.data, Array(repeating: 4, count: 120))
            XCTAssertEqual(restored.node("/level-one-3/b4")?.children.count, 3)
        }
    }

    func testPreorderComparatorPutsSubtreesTogether() {
        let paths = ["/a-b", "/a/c", "/a", "/", "/a/c/d", "/ab", "/a/b"]
        XCTAssertEqual(paths.sorted(by: DataTreeBuilder.preorderPrecedes), ["/", "/a", "/a/b", "/a/c", "/a/c/d", "/a-b", "/ab"])
        XCTAssertTrue(DataTreeBuilder.isChild("/a", of: "/"))
        XCTAssertTrue(DataTreeBuilder.isChild("/a/b", of: "/a"))
        XCTAssertFalse(DataTreeBuilder.isChild("/a/b/c", of: "/a"))
        XCTAssertFalse(DataTreeBuilder.isChild("/ab", of: "/a"))
        XCTAssertFalse(DataTreeBuilder.isChild("/", of: "/"))
    }

    func testCopiesOfATreeAreIndependent() {
        var tree = deep()
        let before = tree
        let digest = before.digest
        var triggers: [WatchTrigger] = []
        let zxid = tree.lastZxid
        tree.apply(Transaction(zxid: zxid + 1, timeMs: 1, sessionId: 1, cxid: 1, body: .setData(path: "/level-one-2/b3", data: [9], version: 1)), triggers: &triggers)
        tree.apply(Transaction(zxid: zxid + 2, timeMs: 1, sessionId: 1, cxid: 1, body: .create(path: "/level-one-2/b3/new", data: nil, acl: ACL.openUnsafe, kind: .persistent)), triggers: &triggers)
        tree.apply(Transaction(zxid: zxid + 3, timeMs: 1, sessionId: 1, cxid: 1, body: .delete(path: "/level-one-4/b0/a-rather-long-child-name-1")), triggers: &triggers)
        XCTAssertEqual(before.digest, digest, "the copy did not change")
        XCTAssertEqual(before.node("/level-one-2/b3")?.data, Array(repeating: 3, count: 90))
        XCTAssertNil(before.node("/level-one-2/b3/new"))
        XCTAssertNotNil(before.node("/level-one-4/b0/a-rather-long-child-name-1"))
        XCTAssertEqual(tree.node("/level-one-2/b3")?.data, [9])
        XCTAssertEqual(tree.node("/level-one-2/b3")?.version, 1)
        XCTAssertEqual(tree.node("/level-one-2/b3")?.stat.numChildren, 4)
        XCTAssertEqual(tree.node("/level-one-2/b3")?.pzxid, zxid + 2)
        XCTAssertEqual(tree.node("/level-one-4/b0")?.children.count, 2)
        XCTAssertEqual(tree.nodeCount, before.nodeCount)
        XCTAssertFalse(tree.sameNodes(as: before))
    }

    func testLookupsOfOddPaths() {
        let tree = deep()
        XCTAssertNotNil(tree.node(""))
        XCTAssertNotNil(tree.node("/"))
        XCTAssertNil(tree.node("level-one-1"))
        XCTAssertNil(tree.node("/level-one-1/"))
        XCTAssertNil(tree.node("//level-one-1"))
        XCTAssertNil(tree.node("/level-one-1//b1"))
        XCTAssertNotNil(tree.node("/level-one-1/b1"))
        XCTAssertEqual(tree.descendantCount("/level-one-1"), 7 * 4)
    }
}
