import NIOCore
import XCTest

@testable import ZKProtocol

/// Real traffic between real clients and a real Apache ZooKeeper 3.8.0 (Debian's build).
///
/// How it was captured: a standalone `ZooKeeperServerMain` (tickTime=200, clientPort on
/// 127.0.0.1, 4lw whitelist `*`, `-Dzookeeper.extendedTypesEnabled=true`) behind a small Python
/// proxy that split each direction of every connection into frames and logged them as hex. The
/// clients were kazoo 2.11 (connection 1), the Java client through `zkCli` (`ZooKeeperMain
/// -server ... <command>`, connections 2–7) and a Python socket script sending requests built by
/// hand from the jute grammar (connections 8 and 9; for those only the replies are ZooKeeper's
/// bytes). Every request and reply is decoded and re-encoded byte for byte; a few are also
/// compared with the values they should decode to.
final class CapturedTrafficTests: XCTestCase {
    struct Exchange {
        var label: String
        var request: String
        /// Notifications (xid -1) first, if the request caused any, then the reply.
        var replies: [String]
        init(_ label: String, _ request: String, _ replies: [String]) {
            self.label = label
            self.request = request
            self.replies = replies
        }
    }

    /// One list per connection; the first exchange of each is the connect handshake.
    static let connections: [[Exchange]] = [
        // 1: kazoo 2.11 session: create, create2, exists with watch, getData, setData (fires the watch), getChildren2, getChildren, getACL, setACL, sync, a failing and a succeeding transaction, digest auth, delete, exists on a missing node, three pings, close
        [
            Exchange("connect", "0000002d000000000000000000000000000027100000000000000000000000100000000000000000000000000000000000", ["000000250000000000000fa001000009e80d00000000001069af5a7b4237968eef9e73805baefbed00"]),
            Exchange("create xid 1", "000000380000000100000001000000042f6361700000000568656c6c6f000000010000001f00000005776f726c6400000006616e796f6e6500000000", ["0000001800000001000000000000000200000000000000042f636170"]),
            Exchange("create2 xid 2", "00000038000000020000000f000000092f6361702f7365712d00000000000000010000001f00000005776f726c6400000006616e796f6e6500000002", ["0000006b00000002000000000000000300000000000000132f6361702f7365712d3030303030303030303000000000000000030000000000000003000001a227e15f10000001a227e15f10000000000000000000000000000000000000000000000000000000000000000000000003"]),
            Exchange("exists xid 3", "000000110000000300000003000000042f63617001", ["000000540000000300000000000000030000000000000000000000020000000000000002000001a227e15eeb000001a227e15eeb000000000000000100000000000000000000000000000005000000010000000000000003"]),
            Exchange("getData xid 4", "000000110000000400000004000000042f63617000", ["0000005d000000040000000000000003000000000000000568656c6c6f00000000000000020000000000000002000001a227e15eeb000001a227e15eeb000000000000000100000000000000000000000000000005000000010000000000000003"]),
            Exchange("setData xid 5", "0000001d0000000500000005000000042f63617000000005776f726c64ffffffff", ["00000020ffffffffffffffffffffffff000000000000000300000003000000042f636170", "000000540000000500000000000000040000000000000000000000020000000000000004000001a227e15eeb000001a227e15f26000000010000000100000000000000000000000000000005000000010000000000000003"]),
            Exchange("getChildren2 xid 6", "00000011000000060000000c000000042f63617000", ["0000006a00000006000000000000000400000000000000010000000e7365712d3030303030303030303000000000000000020000000000000004000001a227e15eeb000001a227e15f26000000010000000100000000000000000000000000000005000000010000000000000003"]),
            Exchange("getChildren xid 7", "000000110000000700000008000000042f63617000", ["0000002600000007000000000000000400000000000000010000000e7365712d30303030303030303030"]),
            Exchange("getACL xid 8", "000000100000000800000006000000042f636170", ["0000006f00000008000000000000000400000000000000010000001f00000005776f726c6400000006616e796f6e6500000000000000020000000000000004000001a227e15eeb000001a227e15f26000000010000000100000000000000000000000000000005000000010000000000000003"]),
            Exchange("setACL xid 9", "0000002f0000000900000007000000042f636170000000010000001f00000005776f726c6400000006616e796f6e65ffffffff", ["000000540000000900000000000000050000000000000000000000020000000000000004000001a227e15eeb000001a227e15f26000000010000000100000001000000000000000000000005000000010000000000000003"]),
            Exchange("sync xid 10", "000000100000000a00000009000000042f636170", ["000000180000000a000000000000000500000000000000042f636170"]),
            Exchange("multi xid 11", "000000ac0000000b0000000e0000000100ffffffff000000062f6361702f6100000000000000010000001f00000005776f726c6400000006616e796f6e65000000000000000100ffffffff000000062f6361702f6200000000000000010000001f00000005776f726c6400000006616e796f6e65000000000000000500ffffffff000000042f6361700000000178000000630000000d00ffffffff000000042f63617000000000ffffffff01ffffffff", ["0000004d0000000b000000000000000600000000ffffffff000000000000000000ffffffff000000000000000000ffffffff00ffffff99ffffff99ffffffff00fffffffefffffffeffffffff01ffffffff"]),
            Exchange("multi xid 12", "000000930000000c0000000e0000000100ffffffff000000062f6361702f630000000163000000010000001f00000005776f726c6400000006616e796f6e65000000000000000500ffffffff000000062f6361702f63000000026363ffffffff0000000d00ffffffff000000062f6361702f63000000010000000200ffffffff000000062f6361702f63ffffffffffffffff01ffffffff", ["0000008b0000000c000000000000000700000000000000010000000000000000062f6361702f6300000005000000000000000000000000070000000000000007000001a227e15fac000001a227e15fac0000000100000000000000000000000000000000000000020000000000000000000000070000000d0000000000000000020000000000ffffffff01ffffffff"]),
            Exchange("auth xid -4", "00000024fffffffc0000006400000000000000066469676573740000000a626f623a736563726574", ["00000010fffffffc000000000000000000000000"]),
            Exchange("delete xid 13", "000000230000000d00000002000000132f6361702f7365712d30303030303030303030ffffffff", ["000000100000000d000000000000000800000000"]),
            Exchange("exists xid 14", "000000120000000e00000003000000052f6e6f706500", ["000000100000000e0000000000000008ffffff9b"]),
            Exchange("ping xid -2", "00000008fffffffe0000000b", ["00000010fffffffe000000000000000800000000"]),
            Exchange("ping xid -2", "00000008fffffffe0000000b", ["00000010fffffffe000000000000000800000000"]),
            Exchange("ping xid -2", "00000008fffffffe0000000b", ["00000010fffffffe000000000000000800000000"]),
            Exchange("closeSession xid 15", "000000080000000ffffffff5", ["000000100000000f000000000000000900000000"]),
        ],
        // 2: zkCli `whoami` (Java client 3.8.0)
        [
            Exchange("connect", "0000002d000000000000000000000000000075300000000000000000000000100000000000000000000000000000000000", ["000000250000000000000fa001000009e80d0001000000107cd0547be28275d3e4e1daab2f3710bb00"]),
            Exchange("whoAmI xid 1", "00000008000000010000006b", ["0000002700000001000000000000000a0000000000000001000000026970000000093132372e302e302e31"]),
        ],
        // 3: zkCli `getAllChildrenNumber /cap`
        [
            Exchange("connect", "0000002d000000000000000000000000000075300000000000000000000000100000000000000000000000000000000000", ["000000250000000000000fa001000009e80d000200000010436d667b02a0d7040519a529b49cd25300"]),
            Exchange("getAllChildrenNumber xid 1", "000000100000000100000068000000042f636170", ["0000001400000001000000000000000b0000000000000000"]),
        ],
        // 4: zkCli `create -t 5000 /ttl ttldata` (server started with -Dzookeeper.extendedTypesEnabled=true)
        [
            Exchange("connect", "0000002d000000000000000000000000000075300000000000000000000000100000000000000000000000000000000000", ["000000250000000000000fa001000009e80d000300000010568e607ba2ebb649fa5b0c558825e72000"]),
            Exchange("createTTL xid 1", "000000420000000100000015000000042f74746c0000000774746c64617461000000010000001f00000005776f726c6400000006616e796f6e65000000050000000000001388", ["0000005c00000001000000000000000d00000000000000042f74746c000000000000000d000000000000000d000001a227e18369000001a227e1836900000000000000000000000000000000000000000000000700000000000000000000000d"]),
        ],
        // 5: zkCli `create -c /cont`
        [
            Exchange("connect", "0000002d000000000000000000000000000075300000000000000000000000100000000000000000000000000000000000", ["000000250000000000000fa001000009e80d000400000010b533437bc26513a2c4aa102eaad14d2200"]),
            Exchange("createContainer xid 1", "000000340000000100000013000000052f636f6e74ffffffff000000010000001f00000005776f726c6400000006616e796f6e6500000004", ["0000005d00000001000000000000000f00000000000000052f636f6e74000000000000000f000000000000000f000001a227e18678000001a227e1867800000000000000000000000000000000000000000000000000000000000000000000000f"]),
        ],
        // 6: zkCli `addWatch -m PERSISTENT_RECURSIVE /cap`
        [
            Exchange("connect", "0000002d000000000000000000000000000075300000000000000000000000100000000000000000000000000000000000", ["000000250000000000000fa001000009e80d000500000010c8543d7b62b1f2e6b9ed77597d5a62ef00"]),
            Exchange("addWatch xid 1", "00000014000000010000006a000000042f63617000000001", ["000000140000000100000000000000100000000000000000"]),
        ],
        // 7: zkCli `getEphemerals /`
        [
            Exchange("connect", "0000002d000000000000000000000000000075300000000000000000000000100000000000000000000000000000000000", ["000000250000000000000fa001000009e80d0006000000108ff14e7b82ce5418da2442d702c0248800"]),
            Exchange("getEphemerals xid 1", "0000000d0000000100000067000000012f", ["000000140000000100000000000000110000000000000000"]),
        ],
        // 8: hand-built requests: connect without the readOnly byte, ephemeral create, getEphemerals, multiRead with a failing getData, empty multi, then a top-level check, which 3.8.0 cannot answer (NullPointerException serializing a null Stat) so it drops the connection
        [
            Exchange("connect", "0000002c0000000000000000000000000000271000000000000000000000001000000000000000000000000000000000", ["000000240000000000000fa001000009e80d000700000010a212497b221a345dcf67a902d6483955"]),
            Exchange("create xid 1", "000000380000000100000001000000082f6361702f6570680000000165000000010000001f00000005776f726c6400000006616e796f6e6500000001", ["0000001c00000001000000000000001900000000000000082f6361702f657068"]),
            Exchange("getEphemerals xid 2", "0000000d0000000200000067000000012f", ["000000200000000200000000000000190000000000000001000000082f6361702f657068"]),
            Exchange("multiRead xid 3", "0000004b00000003000000160000000400ffffffff000000042f636170000000000800ffffffff000000042f636170000000000400ffffffff000000082f6d697373696e6700ffffffff01ffffffff", ["000000900000000300000000000000190000000000000004000000000000000005776f726c6400000000000000020000000000000004000001a227e15eeb000001a227e15f260000000100000005000000010000000000000000000000050000000100000000000000190000000800000000000000000100000003657068ffffffff00ffffff9bffffff9bffffffff01ffffffff"]),
            Exchange("multi xid 4", "00000011000000040000000effffffff01ffffffff", ["0000001900000004000000000000001a00000000ffffffff01ffffffff"]),
            Exchange("check xid 5", "00000014000000050000000d000000042f636170ffffffff", []),
        ],
        // 9: hand-built requests: setWatches (two events then the -8 reply), setWatches2, checkWatches, removeWatches, addWatch, exists, whoAmI, ping, unknown opcode 999 (UNIMPLEMENTED, zxid -1)
        [
            Exchange("connect", "0000002d000000000000000000000000000027100000000000000000000000100000000000000000000000000000000000", ["000000250000000000000fa001000009e80d00080000001002b82b7b429490b599b6addbf8f49f5600"]),
            Exchange("setWatches xid -8", "00000035fffffff800000065000000000000000100000001000000042f63617000000001000000052f6e6f706500000001000000042f636170", ["00000020ffffffffffffffffffffffff000000000000000300000003000000042f636170", "00000020ffffffffffffffffffffffff000000000000000400000003000000042f636170", "00000010fffffff8000000000000001d00000000"]),
            Exchange("setWatches2 xid -8", "00000034fffffff800000069000000000000000100000000000000000000000000000001000000042f63617000000001000000042f636170", ["00000010fffffff8000000000000001d00000000"]),
            Exchange("checkWatches xid 6", "000000140000000600000011000000042f63617000000001", ["0000001000000006000000000000001d00000000"]),
            Exchange("removeWatches xid 7", "000000140000000700000012000000042f63617000000002", ["0000001000000007000000000000001d00000000"]),
            Exchange("addWatch xid 8", "00000014000000080000006a000000042f63617000000000", ["0000001400000008000000000000001d0000000000000000"]),
            Exchange("exists xid 9", "000000110000000900000003000000042f63617001", ["0000005400000009000000000000001d0000000000000000000000020000000000000004000001a227e15eeb000001a227e15f2600000001000000060000000100000000000000000000000500000000000000000000001c"]),
            Exchange("whoAmI xid 10", "000000080000000a0000006b", ["000000270000000a000000000000001d0000000000000001000000026970000000093132372e302e302e31"]),
            Exchange("ping xid -2", "00000008fffffffe0000000b", ["00000010fffffffe000000000000001d00000000"]),
            Exchange("unknown 999 xid 11", "000000080000000b000003e7", ["000000100000000bfffffffffffffffffffffffa"]),
        ],
    ]

    func testEveryCapturedFrameDecodesAndReencodesByteForByte() throws {
        var framesChecked = 0
        for connection in Self.connections {
            guard let handshake = connection.first else { continue }
            var connectPayload = try payload(ofFrame: handshake.request)
            let connect = try ClientMessageDecoder.decodeConnectRequest(&connectPayload)
            XCTAssertEqual(hex(encoded { ClientMessageEncoder.encode(connect, into: &$0) }), hex(bytes(handshake.request)))
            for reply in handshake.replies {
                var replyPayload = try payload(ofFrame: reply)
                let response = try ServerMessageDecoder.decodeConnectResponse(&replyPayload)
                // ZooKeeper 3.8 echoes the client's format.
                XCTAssertEqual(response.readOnly == nil, connect.readOnly == nil, handshake.label)
                XCTAssertEqual(hex(encodedFrame(.connect(response))), hex(bytes(reply)), handshake.label)
                framesChecked += 2
            }
            for exchange in connection.dropFirst() {
                var requestPayload = try payload(ofFrame: exchange.request)
                let (header, request) = try ClientMessageDecoder.decodeRequest(&requestPayload)
                XCTAssertEqual(requestPayload.readableBytes, 0, exchange.label)
                XCTAssertEqual(request.opcode, header.type, exchange.label)
                XCTAssertEqual(hex(encodedRequest(xid: header.xid, request)), hex(bytes(exchange.request)), exchange.label)
                framesChecked += 1
                for reply in exchange.replies {
                    var replyPayload = try payload(ofFrame: reply)
                    let frame = try ServerMessageDecoder.decodeReply(&replyPayload, opcode: header.type)
                    if case .reply(let replyHeader, _) = frame {
                        // ZooKeeper answers a ping with xid -2 whatever xid it carried.
                        XCTAssertEqual(replyHeader.xid, header.xid, exchange.label)
                    }
                    XCTAssertEqual(hex(encodedFrame(frame)), hex(bytes(reply)), exchange.label)
                    framesChecked += 1
                }
            }
        }
        XCTAssertEqual(framesChecked, 98)
    }

    /// Finds a captured exchange by its label and decodes it.
    func exchange(_ connection: Int, _ label: String) throws -> (Request, [ServerFrame]) {
        guard let found = Self.connections[connection - 1].first(where: { $0.label == label }) else {
            XCTFail("no exchange \(label) in connection \(connection)")
            throw ProtocolError.invalid(what: "test exchange")
        }
        var requestPayload = try payload(ofFrame: found.request)
        let (header, request) = try ClientMessageDecoder.decodeRequest(&requestPayload)
        let replies = try found.replies.map { reply -> ServerFrame in
            var replyPayload = try payload(ofFrame: reply)
            return try ServerMessageDecoder.decodeReply(&replyPayload, opcode: header.type)
        }
        return (request, replies)
    }

    func testKazooTransactionThatFailsOnItsThirdOperation() throws {
        let (request, replies) = try exchange(1, "multi xid 11")
        let open = ACL.openUnsafe
        XCTAssertEqual(
            request,
            .multi([
                .create(CreateRequest(path: "/cap/a", data: [], acl: open, flags: 0)),
                .create(CreateRequest(path: "/cap/b", data: [], acl: open, flags: 0)),
                .setData(path: "/cap", data: Array("x".utf8), version: 99),
                .check(path: "/cap", version: 0),
            ]))
        XCTAssertEqual(
            replies,
            [.reply(ReplyHeader(xid: 11, zxid: 6, err: 0), .multi([.error(.ok), .error(.ok), .error(.badVersion), .error(.runtimeInconsistency)]))])
    }

    func testKazooTransactionThatSucceeds() throws {
        let (request, replies) = try exchange(1, "multi xid 12")
        XCTAssertEqual(request.opcode, OpCode.multi.rawValue)
        guard case .reply(let header, .multi(let results)) = replies.first else { return XCTFail("\(replies)") }
        XCTAssertEqual(header, ReplyHeader(xid: 12, zxid: 7, err: 0))
        XCTAssertEqual(results.count, 4)
        XCTAssertEqual(results.first, .create(path: "/cap/c"))
        XCTAssertEqual(Array(results.dropFirst(2)), [.check, .delete])
        guard case .setData(let stat) = results[1] else { return XCTFail("\(results[1])") }
        XCTAssertEqual(stat.version, 1)
        XCTAssertEqual(stat.dataLength, 2)
    }

    func testSetDataNotificationArrivesBeforeTheReply() throws {
        let (request, replies) = try exchange(1, "setData xid 5")
        XCTAssertEqual(request, .setData(path: "/cap", data: Array("world".utf8), version: -1))
        XCTAssertEqual(replies.count, 2)
        XCTAssertEqual(replies.first, .notification(zxid: -1, WatcherEvent(.nodeDataChanged, path: "/cap")))
    }

    func testKazooDigestAuth() throws {
        let (request, replies) = try exchange(1, "auth xid -4")
        XCTAssertEqual(request, .auth(type: 0, scheme: "digest", auth: Array("bob:secret".utf8)))
        XCTAssertEqual(replies, [.reply(ReplyHeader(xid: -4, zxid: 0, err: 0), .empty)])
    }

    func testJavaClientCreateTTLAndCreateContainer() throws {
        let (ttl, ttlReplies) = try exchange(4, "createTTL xid 1")
        XCTAssertEqual(ttl, .createTTL(CreateRequest(path: "/ttl", data: Array("ttldata".utf8), acl: ACL.openUnsafe, flags: 5, ttl: 5000)))
        guard case .reply(_, .create2(let path, let stat)) = ttlReplies.first else { return XCTFail("\(ttlReplies)") }
        XCTAssertEqual(path, "/ttl")
        XCTAssertEqual(stat.ephemeralOwner, 0, "TTL nodes show no owner")
        let (container, _) = try exchange(5, "createContainer xid 1")
        XCTAssertEqual(container, .createContainer(CreateRequest(path: "/cont", data: nil, acl: ACL.openUnsafe, flags: 4)))
    }

    func testJavaClientWhoAmIAddWatchAndGetEphemerals() throws {
        let (whoAmI, whoAmIReplies) = try exchange(2, "whoAmI xid 1")
        XCTAssertEqual(whoAmI, .whoAmI)
        XCTAssertEqual(whoAmIReplies, [.reply(ReplyHeader(xid: 1, zxid: 10, err: 0), .whoAmI([ClientInfo(authScheme: "ip", user: "127.0.0.1")]))])
        let (addWatch, addWatchReplies) = try exchange(6, "addWatch xid 1")
        XCTAssertEqual(addWatch, .addWatch(path: "/cap", mode: AddWatchMode.persistentRecursive.rawValue))
        XCTAssertEqual(addWatchReplies, [.reply(ReplyHeader(xid: 1, zxid: 0x10, err: 0), .errorResponse(0))])
        let (ephemerals, ephemeralsReplies) = try exchange(7, "getEphemerals xid 1")
        XCTAssertEqual(ephemerals, .getEphemerals(prefixPath: "/"))
        XCTAssertEqual(ephemeralsReplies, [.reply(ReplyHeader(xid: 1, zxid: 0x11, err: 0), .getEphemerals(paths: []))])
    }

    func testMultiReadKeepsGoingPastAFailingRead() throws {
        let (request, replies) = try exchange(8, "multiRead xid 3")
        XCTAssertEqual(
            request,
            .multiRead([.getData(path: "/cap", watch: false), .getChildren(path: "/cap", watch: false), .getData(path: "/missing", watch: false)]))
        guard case .reply(_, .multi(let results)) = replies.first, results.count == 3 else { return XCTFail("\(replies)") }
        guard case .getData(let data, _) = results[0] else { return XCTFail("\(results[0])") }
        XCTAssertEqual(data, Array("world".utf8))
        XCTAssertEqual(results[1], .getChildren(children: ["eph"]))
        XCTAssertEqual(results[2], .error(.noNode))
    }

    func testEmptyMultiIsJustTheTerminator() throws {
        let (request, replies) = try exchange(8, "multi xid 4")
        XCTAssertEqual(request, .multi([]))
        XCTAssertEqual(replies, [.reply(ReplyHeader(xid: 4, zxid: 0x1a, err: 0), .multi([]))])
    }

    func testSetWatchesSendsEventsThenItsReply() throws {
        let (request, replies) = try exchange(9, "setWatches xid -8")
        XCTAssertEqual(request, .setWatches(SetWatchesRequest(relativeZxid: 1, dataWatches: ["/cap"], existWatches: ["/nope"], childWatches: ["/cap"])))
        XCTAssertEqual(
            replies,
            [
                .notification(zxid: -1, WatcherEvent(.nodeDataChanged, path: "/cap")),
                .notification(zxid: -1, WatcherEvent(.nodeChildrenChanged, path: "/cap")),
                .reply(ReplyHeader(xid: -8, zxid: 0x1d, err: 0), .empty),
            ])
    }

    func testUnknownOpcodeIsDecodedNotRejected() throws {
        let (request, replies) = try exchange(9, "unknown 999 xid 11")
        XCTAssertEqual(request, .unknown(opcode: 999))
        XCTAssertEqual(replies, [.reply(ReplyHeader(xid: 11, zxid: -1, err: ErrorCode.unimplemented.rawValue), .empty)])
    }
}
