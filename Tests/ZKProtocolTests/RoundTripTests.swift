import NIOCore
import XCTest

@testable import ZKProtocol

/// Every Request, Response and MultiResult case survives encode → frame → decode unchanged.
final class RoundTripTests: XCTestCase {
    static let create = CreateRequest(path: "/a/b", data: Array("data".utf8), acl: ACL.openUnsafe, flags: 0)
    static let createNulls = CreateRequest(path: "/ü/日本", data: nil, acl: nil, flags: 3)
    static let createTTL = CreateRequest(path: "/t", data: [], acl: ACL.creatorAll, flags: 6, ttl: 1 << 40 - 1)

    /// At least one sample of every Request case, null and non-null variants where they differ.
    static let requests: [Request] = [
        .create(create), .create(createNulls), .create2(create), .createContainer(createNulls), .createTTL(createTTL),
        .delete(path: "/a", version: -1), .exists(path: "/a", watch: true), .getData(path: "/a", watch: false),
        .setData(path: "/a", data: [0, 255], version: 7), .setData(path: "/a", data: nil, version: -1),
        .getACL(path: "/a"), .setACL(path: "/a", acl: ACL.readUnsafe, version: 2), .setACL(path: "/a", acl: nil, version: 0),
        .getChildren(path: "/", watch: true), .sync(path: "/s"), .ping, .getChildren2(path: "/", watch: false),
        .check(path: "/c", version: 4),
        .multi([
            .create(create), .create2(createNulls), .createContainer(create), .createTTL(createTTL),
            .delete(path: "/d", version: 1), .setData(path: "/e", data: [1], version: -1), .check(path: "/f", version: 0),
        ]),
        .multi([]),
        .multi([.delete(path: "/d", version: 1), .unknown(opcode: 42)]),
        .reconfig(ReconfigRequest(joiningServers: "server.4=h:2888:3888;2181", leavingServers: nil, newMembers: "", currentConfigId: -1)),
        .checkWatches(path: "/w", type: WatcherType.any.rawValue), .removeWatches(path: "/w", type: WatcherType.data.rawValue),
        .deleteContainer(path: "/container"),
        .multiRead([.getData(path: "/a", watch: false), .getChildren(path: "/b", watch: true)]),
        .auth(type: 0, scheme: "digest", auth: Array("bob:secret".utf8)), .auth(type: 0, scheme: "ip", auth: []),
        .setWatches(SetWatchesRequest(relativeZxid: 0x5_0000_0001, dataWatches: ["/a"], existWatches: [], childWatches: ["/b", "/c"])),
        .sasl(token: [1, 2, 3]), .sasl(token: nil), .getEphemerals(prefixPath: "/app"), .getAllChildrenNumber(path: "/"),
        .setWatches2(
            SetWatchesRequest(
                relativeZxid: 9, dataWatches: [], existWatches: ["/x"], childWatches: [], persistentWatches: ["/p"],
                persistentRecursiveWatches: ["/r", "/r2"])),
        .addWatch(path: "/w", mode: AddWatchMode.persistent.rawValue), .whoAmI, .closeSession,
        .nullPath(opcode: OpCode.getData.rawValue), .nullPath(opcode: OpCode.create.rawValue),
        .unknown(opcode: 999), .unknown(opcode: OpCode.createSession.rawValue), .unknown(opcode: OpCode.notification.rawValue),
    ]

    /// The case name, through an exhaustive switch: adding a case to `Request` breaks this
    /// function until the case has a sample above.
    static func caseName(_ request: Request) -> String {
        switch request {
        case .create: return "create"
        case .create2: return "create2"
        case .createContainer: return "createContainer"
        case .createTTL: return "createTTL"
        case .delete: return "delete"
        case .exists: return "exists"
        case .getData: return "getData"
        case .setData: return "setData"
        case .getACL: return "getACL"
        case .setACL: return "setACL"
        case .getChildren: return "getChildren"
        case .sync: return "sync"
        case .ping: return "ping"
        case .getChildren2: return "getChildren2"
        case .check: return "check"
        case .multi: return "multi"
        case .reconfig: return "reconfig"
        case .checkWatches: return "checkWatches"
        case .removeWatches: return "removeWatches"
        case .deleteContainer: return "deleteContainer"
        case .multiRead: return "multiRead"
        case .auth: return "auth"
        case .setWatches: return "setWatches"
        case .sasl: return "sasl"
        case .getEphemerals: return "getEphemerals"
        case .getAllChildrenNumber: return "getAllChildrenNumber"
        case .setWatches2: return "setWatches2"
        case .addWatch: return "addWatch"
        case .whoAmI: return "whoAmI"
        case .closeSession: return "closeSession"
        case .unknown: return "unknown"
        case .nullPath: return "nullPath"
        }
    }

    func testEveryRequestCaseHasASample() {
        XCTAssertEqual(Set(Self.requests.map(Self.caseName)).count, 32)
    }

    func testEveryRequestRoundTrips() throws {
        for (index, request) in Self.requests.enumerated() {
            let xid = Int32(index) - 3
            var body = try payload(ofFrame: encodedRequest(xid: xid, request))
            let (header, decoded) = try ClientMessageDecoder.decodeRequest(&body)
            XCTAssertEqual(header, RequestHeader(xid: xid, type: request.opcode))
            XCTAssertEqual(decoded, request)
            XCTAssertEqual(body.readableBytes, 0, "\(request)")
        }
    }

    func testConnectRequestRoundTripsWithAndWithoutTheReadOnlyByte() throws {
        for readOnly in [nil, false, true] as [Bool?] {
            let request = ConnectRequest(
                protocolVersion: 0, lastZxidSeen: 0x3_0000_0007, timeoutMs: 30_000, sessionId: 0x0100_0009_e80d_0001,
                password: Array(0..<16), readOnly: readOnly)
            var body = try payload(ofFrame: encoded { ClientMessageEncoder.encode(request, into: &$0) })
            XCTAssertEqual(body.readableBytes, readOnly == nil ? 44 : 45)
            XCTAssertEqual(try ClientMessageDecoder.decodeConnectRequest(&body), request)
        }
    }

    /// At least one sample of every Response case, with the opcode whose reply carries it.
    static let responses: [(opcode: OpCode, xid: Int32, response: Response)] = [
        (.delete, 1, .empty), (.ping, SpecialXid.ping, .empty), (.auth, SpecialXid.auth, .empty),
        (.setWatches, SpecialXid.setWatches, .empty), (.closeSession, 2, .empty), (.check, 3, .empty),
        (.create, 4, .create(path: "/a/n-0000000001")),
        (.create2, 5, .create2(path: "/a", stat: sampleStat)), (.createContainer, 5, .create2(path: "/c", stat: Stat())),
        (.createTTL, 5, .create2(path: "/t", stat: sampleStat)),
        (.exists, 6, .stat(sampleStat)), (.setData, 6, .stat(Stat())), (.setACL, 6, .stat(sampleStat)),
        (.getData, 7, .getData(data: Array("value".utf8), stat: sampleStat)), (.getData, 7, .getData(data: nil, stat: sampleStat)),
        (.reconfig, 7, .getData(data: Array("server.1=a:1:2;3\nversion=1".utf8), stat: sampleStat)),
        (.getACL, 8, .getACL(acl: [ACL(perms: .all, id: Id(scheme: "digest", id: "bob:x"))], stat: sampleStat)),
        (.getChildren, 9, .getChildren(children: ["a", "b", "zookeeper"])), (.getChildren, 9, .getChildren(children: [])),
        (.getChildren2, 10, .getChildren2(children: ["x"], stat: sampleStat)),
        (.sync, 11, .sync(path: "/s")),
        (
            .multi, 12,
            .multi([
                .create(path: "/a"), .create2(path: "/b", stat: sampleStat), .delete, .setData(stat: sampleStat), .check,
                .error(.ok), .error(.badVersion), .error(.runtimeInconsistency),
            ])
        ),
        (.multiRead, 13, .multi([.getData(data: nil, stat: sampleStat), .getData(data: [1], stat: Stat()), .getChildren(children: ["c"]), .error(.noNode)])),
        (.multi, 14, .multi([])),
        (.sasl, 15, .sasl(token: [9, 8, 7])), (.sasl, 15, .sasl(token: nil)),
        (.getEphemerals, 16, .getEphemerals(paths: ["/e/1", "/e/2"])),
        (.getAllChildrenNumber, 17, .getAllChildrenNumber(7)),
        (.whoAmI, 18, .whoAmI([ClientInfo(authScheme: "ip", user: "127.0.0.1"), ClientInfo(authScheme: "digest", user: "bob")])),
        (.addWatch, 19, .errorResponse(0)),
    ]

    static func caseName(_ response: Response) -> String {
        switch response {
        case .empty: return "empty"
        case .create: return "create"
        case .create2: return "create2"
        case .stat: return "stat"
        case .getData: return "getData"
        case .getACL: return "getACL"
        case .getChildren: return "getChildren"
        case .getChildren2: return "getChildren2"
        case .sync: return "sync"
        case .multi: return "multi"
        case .sasl: return "sasl"
        case .getEphemerals: return "getEphemerals"
        case .getAllChildrenNumber: return "getAllChildrenNumber"
        case .whoAmI: return "whoAmI"
        case .errorResponse: return "errorResponse"
        }
    }

    static func caseName(_ result: MultiResult) -> String {
        switch result {
        case .create: return "create"
        case .create2: return "create2"
        case .delete: return "delete"
        case .setData: return "setData"
        case .check: return "check"
        case .getData: return "getData"
        case .getChildren: return "getChildren"
        case .error: return "error"
        }
    }

    func testEveryResponseAndMultiResultCaseHasASample() {
        XCTAssertEqual(Set(Self.responses.map { Self.caseName($0.response) }).count, 15)
        let results = Self.responses.flatMap { sample -> [MultiResult] in
            if case .multi(let results) = sample.response { return results }
            return []
        }
        XCTAssertEqual(Set(results.map(Self.caseName)).count, 8)
    }

    func testEveryResponseRoundTrips() throws {
        for sample in Self.responses {
            let frame = ServerFrame.reply(ReplyHeader(xid: sample.xid, zxid: 0x2_0000_0010, err: 0), sample.response)
            var body = try payload(ofFrame: encodedFrame(frame))
            XCTAssertEqual(try ServerMessageDecoder.decodeReply(&body, opcode: sample.opcode.rawValue), frame, "\(sample.opcode)")
        }
    }

    func testErrorRepliesRoundTripWithoutABody() throws {
        for code in ErrorCode.allCases where code != .ok {
            let frame = ServerFrame.reply(ReplyHeader(xid: 5, zxid: 3, err: code.rawValue), .empty)
            var body = try payload(ofFrame: encodedFrame(frame))
            XCTAssertEqual(body.readableBytes, 16)
            XCTAssertEqual(try ServerMessageDecoder.decodeReply(&body, opcode: OpCode.getData.rawValue), frame)
        }
    }

    func testEveryErrorCodeRoundTripsAsAMultiResult() throws {
        let frame = ServerFrame.reply(ReplyHeader(xid: 1, zxid: 1, err: 0), .multi(ErrorCode.allCases.map { .error($0) }))
        var body = try payload(ofFrame: encodedFrame(frame))
        XCTAssertEqual(try ServerMessageDecoder.decodeReply(&body, opcode: OpCode.multi.rawValue), frame)
    }

    func testNotificationsRoundTrip() throws {
        for (zxid, event) in [
            (Int64(-1), WatcherEvent(.nodeCreated, path: "/n")), (0x1_0000_0005, WatcherEvent(.nodeDeleted, path: "/n/é")),
            (7, WatcherEvent(.nodeChildrenChanged, path: "/")), (8, WatcherEvent(type: -1, state: -112, path: "")),
        ] {
            var body = try payload(ofFrame: encodedFrame(.notification(zxid: zxid, event)))
            XCTAssertEqual(try ServerMessageDecoder.decodeReply(&body, opcode: OpCode.getData.rawValue), .notification(zxid: zxid, event))
        }
    }

    func testConnectResponseRoundTripsWithAndWithoutTheReadOnlyByte() throws {
        for readOnly in [nil, false, true] as [Bool?] {
            let response = ConnectResponse(timeoutMs: 4000, sessionId: 0x0100_0009_e80d_0008, password: Array(100..<116), readOnly: readOnly)
            var body = try payload(ofFrame: encodedFrame(.connect(response)))
            XCTAssertEqual(try ServerMessageDecoder.decodeConnectResponse(&body), response)
        }
    }
}
