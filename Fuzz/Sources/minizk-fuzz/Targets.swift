// libFuzzer entry points for every decoder of bytes that come from outside a MiniZK process.
// Built only by scripts/fuzz-libfuzzer.sh (MINIZK_FUZZ=1 adds this target to the package,
// `-sanitize=fuzzer` links libFuzzer's main). One binary holds every target; MINIZK_FUZZ_TARGET
// chooses which one runs.
//
// A decoder must throw, never trap, on bad bytes. Where an encoder exists, what decodes must
// survive the round trip: decode(encode(decode(bytes))) == decode(bytes), or, for values that are
// not Equatable, encode(decode(encode(decode(bytes)))) == encode(decode(bytes)) byte for byte.

import Foundation
import NIOCore
import ZKClientCore
import ZKCore
import ZKProtocol
import ZKServerFormats
import ZKStorage

/// Stops the run with a message libFuzzer reports as a crash (the input is saved).
func violated(_ what: String) -> Never {
    fatalError("property violated: \(what)")
}

enum FuzzTarget: String, CaseIterable {
    case frames, connect, request, connectResponse = "connect-response", reply, clientSession = "client-session"
    case peer, transaction, snapshot, zooCfg = "zoocfg", jaas, sasl
}

nonisolated(unsafe) var selected: FuzzTarget = .request

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if let directory = ProcessInfo.processInfo.environment["MINIZK_FUZZ_WRITE_SEEDS"] {
        do {
            try writeSeeds(into: directory)
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("writing seeds: \(error)\n".utf8))
            exit(1)
        }
    }
    let name = ProcessInfo.processInfo.environment["MINIZK_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: " ")
        FileHandle.standardError.write(Data("set MINIZK_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    switch selected {
    case .frames: fuzzFrames(bytes)
    case .connect: fuzzConnect(bytes)
    case .request: fuzzRequest(bytes)
    case .connectResponse: fuzzConnectResponse(bytes)
    case .reply: fuzzReply(bytes)
    case .clientSession: fuzzClientSession(bytes)
    case .peer: fuzzPeer(bytes)
    case .transaction: fuzzTransaction(bytes)
    case .snapshot: fuzzSnapshot(bytes)
    case .zooCfg: fuzzZooConfig(bytes)
    case .jaas: fuzzJAAS(bytes)
    case .sasl: fuzzSASL(bytes)
    }
    return 0
}

/// Strips the length prefix of an encoded frame and checks that it counts the rest exactly.
func payloadOfFrame(_ buffer: ByteBuffer) -> ByteBuffer {
    var buffer = buffer
    guard let length = buffer.readInteger(endianness: .big, as: Int32.self), Int(length) == buffer.readableBytes else {
        violated("an encoded frame's length prefix does not count its payload")
    }
    return buffer
}

// MARK: - Client → server

/// The stream splitter as the server (and the client) run it over arbitrary bytes, fed in pieces.
func fuzzFrames(_ bytes: [UInt8]) {
    var decoder = ZKFrameDecoder(frameBytesMax: 4096)
    var stream = ByteBuffer()
    var total = 0
    // The first byte chooses the piece size so that frames straddle reads.
    let step = max(1, Int(bytes.first ?? 1) % 17)
    var index = 0
    while index < bytes.count {
        stream.writeBytes(bytes[index..<min(bytes.count, index + step)])
        index += step
        do {
            while let frame = try decoder.decode(buffer: &stream) {
                guard frame.readableBytes <= 4096 else { violated("frame above the maximum") }
                total += 4 + frame.readableBytes
            }
        } catch {
            return
        }
    }
    guard total + stream.readableBytes == bytes.count else { violated("frame decoder lost or invented bytes") }
}

func fuzzConnect(_ bytes: [UInt8]) {
    var payload = ByteBuffer(bytes: bytes)
    guard let request = try? ClientMessageDecoder.decodeConnectRequest(&payload) else { return }
    var encoded = ByteBuffer()
    ClientMessageEncoder.encode(request, into: &encoded)
    var again = payloadOfFrame(encoded)
    guard let second = try? ClientMessageDecoder.decodeConnectRequest(&again) else {
        violated("re-encoded ConnectRequest does not decode: \(request)")
    }
    guard second == request else { violated("ConnectRequest round trip: \(request) became \(second)") }
}

func fuzzRequest(_ bytes: [UInt8]) {
    var payload = ByteBuffer(bytes: bytes)
    guard let (header, request) = try? ClientMessageDecoder.decodeRequest(&payload) else { return }
    if case .unknown = request { return }
    var encoded = ByteBuffer()
    ClientMessageEncoder.encode(xid: header.xid, request, into: &encoded)
    var again = payloadOfFrame(encoded)
    let second: (RequestHeader, Request)
    do {
        second = try ClientMessageDecoder.decodeRequest(&again)
    } catch {
        violated("re-encoded request does not decode (\(error)): \(request)")
    }
    guard second.0 == header, second.1 == request else {
        violated("request round trip: \(header) \(request) became \(second.0) \(second.1)")
    }
}

// MARK: - Server → client

func fuzzConnectResponse(_ bytes: [UInt8]) {
    var payload = ByteBuffer(bytes: bytes)
    guard let response = try? ServerMessageDecoder.decodeConnectResponse(&payload) else { return }
    var encoded = ByteBuffer()
    ServerFrame.connect(response).encode(into: &encoded)
    var again = payloadOfFrame(encoded)
    guard let second = try? ServerMessageDecoder.decodeConnectResponse(&again), second == response else {
        violated("ConnectResponse round trip: \(response)")
    }
}

/// The first four bytes are the opcode of the request the reply answers; the rest is the payload.
func fuzzReply(_ bytes: [UInt8]) {
    guard bytes.count >= 4 else { return }
    let opcode = Int32(bitPattern: UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3]))
    var payload = ByteBuffer(bytes: bytes.dropFirst(4))
    guard let frame = try? ServerMessageDecoder.decodeReply(&payload, opcode: opcode) else { return }
    var encoded = ByteBuffer()
    frame.encode(into: &encoded)
    var again = payloadOfFrame(encoded)
    let second: ServerFrame
    do {
        second = try ServerMessageDecoder.decodeReply(&again, opcode: opcode)
    } catch {
        violated("re-encoded reply does not decode (\(error)): opcode \(opcode) \(frame)")
    }
    guard second == frame else { violated("reply round trip: opcode \(opcode) \(frame) became \(second)") }
}

/// The Swift client's session core fed a stream of frames: the handshake answer, then replies and
/// events for a few calls it has in flight. Whatever comes, it must not trap.
func fuzzClientSession(_ bytes: [UInt8]) {
    var generator = SplitMix64(seed: 1)
    var session = ClientSession(
        hosts: [HostAddress(host: "127.0.0.1", port: 1)],
        configuration: ClientSession.Configuration(sessionTimeoutMs: 10_000, chroot: bytes.first.map { $0 & 1 == 1 ? "/app" : nil } ?? nil),
        generator: &generator
    )
    var now: Int64 = 0
    var attempt: UInt64 = 0
    func follow(_ step: ClientStep) {
        for action in step.actions {
            if case .connect(_, let next) = action { attempt = next }
        }
    }
    follow(session.start(nowMs: now))
    follow(session.connectionEstablished(attempt: attempt, nowMs: now))
    let calls: [Request] = [
        .getData(path: "/a", watch: true), .exists(path: "/b", watch: true), .getChildren2(path: "/", watch: true),
        .create(CreateRequest(path: "/c", data: [1], acl: [ACL(perms: .all, id: Id(scheme: "world", id: "anyone"))], flags: 2)),
        .multi([.check(path: "/a", version: 1), .delete(path: "/b", version: -1)]), .sync(path: "/"),
    ]
    var token: UInt64 = 0
    var stream = ByteBuffer(bytes: bytes.dropFirst())
    var decoder = ZKFrameDecoder()
    while true {
        guard let payload = try? decoder.decode(buffer: &stream) else { break }
        now += 100
        if token < calls.count * 3 {
            follow(session.submit(ClientCall(calls[Int(token) % calls.count], watcher: WatcherID(token)), token: RequestToken(token), nowMs: now))
            token += 1
        }
        follow(session.received(payload: payload, attempt: attempt, nowMs: now))
        follow(session.tick(nowMs: now))
    }
}

// MARK: - Between members and on disk

func encodedPeer(_ message: PeerMessage) -> ByteBuffer {
    var buffer = ByteBuffer()
    PeerCodec.encode(message, into: &buffer)
    return payloadOfFrame(buffer)
}

func fuzzPeer(_ bytes: [UInt8]) {
    var payload = ByteBuffer(bytes: bytes)
    guard let message = try? PeerCodec.decode(&payload) else { return }
    let first = encodedPeer(message)
    var again = first
    let second: PeerMessage
    do {
        second = try PeerCodec.decode(&again)
    } catch {
        violated("re-encoded peer message does not decode (\(error))")
    }
    guard again.readableBytes == 0 else { violated("re-encoded peer message leaves \(again.readableBytes) bytes") }
    guard encodedPeer(second) == first else { violated("peer message round trip changed the bytes") }
}

func fuzzTransaction(_ bytes: [UInt8]) {
    var payload = ByteBuffer(bytes: bytes)
    guard let txn = try? Transaction.decode(&payload) else { return }
    var again = txn.encoded()
    let second: Transaction
    do {
        second = try Transaction.decode(&again)
    } catch {
        violated("re-encoded transaction does not decode (\(error)): \(txn)")
    }
    guard second == txn, again.readableBytes == 0 else { violated("transaction round trip: \(txn) became \(second)") }
}

func encodedSnapshot(_ tree: DataTree) -> ByteBuffer {
    var buffer = ByteBuffer()
    SnapshotCodec.encode(tree, chunkBytes: 64) { chunk in buffer.writeImmutableBuffer(chunk) }
    return buffer
}

/// The snapshot decoder both at once and in chunks (as recovery and SNAP sync feed it); both must
/// agree, and what decodes must re-encode to bytes that decode to the same tree.
func fuzzSnapshot(_ bytes: [UInt8]) {
    var whole = ByteBuffer(bytes: bytes)
    let atOnce = try? SnapshotCodec.decode(&whole)
    var chunked = SnapshotDecoder()
    var chunkedTree: DataTree? = nil
    do {
        let step = max(1, Int(bytes.last ?? 7) % 29)
        var index = 0
        while index < bytes.count {
            try chunked.feed(ByteBuffer(bytes: bytes[index..<min(bytes.count, index + step)]))
            index += step
        }
        chunkedTree = try chunked.finish()
    } catch {
        chunked.abandon()
    }
    guard (atOnce == nil) == (chunkedTree == nil) else {
        violated("snapshot decoded \(atOnce == nil ? "only in chunks" : "only at once")")
    }
    guard let atOnce, let chunkedTree else { return }
    let first = encodedSnapshot(atOnce)
    guard encodedSnapshot(chunkedTree) == first else { violated("chunked and whole snapshot decodes differ") }
    var again = first
    guard let second = try? SnapshotCodec.decode(&again) else { violated("re-encoded snapshot does not decode") }
    guard encodedSnapshot(second) == first else { violated("snapshot round trip changed the bytes") }
}

// MARK: - Configuration files and SASL

func fuzzZooConfig(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let config = try? ZooConfig(parsing: text) else { return }
    for server in config.servers { _ = config.replicaConfig(for: server.id) }
}

func fuzzJAAS(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let users = try? JAASConfig.serverUsers(in: text) else { return }
    for (name, _) in users where name.isEmpty || name.contains(where: \.isWhitespace) {
        violated("JAAS user name \(name.debugDescription)")
    }
}

/// The client's DIGEST-MD5 response token, checked against one user. Whatever the token, the
/// answer is a result; a success names a known user and carries an rspauth token.
func fuzzSASL(_ bytes: [UInt8]) {
    let server = SASLDigestServer(users: ["alice": "alice_password", "bob": ""])
    switch server.verify(response: bytes, nonce: "MDEyMzQ1Njc4OWFiY2RlZg==") {
    case .success(let (user, token)):
        guard server.users[user] != nil, String(decoding: token, as: UTF8.self).hasPrefix("rspauth=") else {
            violated("SASL accepted \(user) with token \(token)")
        }
    case .failure:
        break
    }
}

// SwiftPM links an executable target with `main` defined as `<module>_main`; this one hands the
// arguments to libFuzzer's driver (libFuzzer's own `main` is then not linked in).
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("minizk_fuzz_main")
public func minizkFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return llvmFuzzerRunDriver(&argc, &argv, fuzzOneInput)
}
