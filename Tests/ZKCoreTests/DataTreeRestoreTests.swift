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
        tree.nodes.map { ($0.key, $0.value) }
    }

    func testRestoringRebuildsChildrenAndIndexes() throws {
        let tree = built()
        let restored = try XCTUnwrap(DataTree(restoring: parts(tree), sessions: [(9, 4000)], lastZxid: tree.lastZxid))
        XCTAssertEqual(restored.nodes, tree.nodes)
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
}
