import XCTest
@testable import ZKCore
import ZKProtocol
@testable import ZKServer

/// The four-letter-word answers, formatted from fixed snapshots: no sockets, no clock.
final class FourLetterWordFormatTests: XCTestCase {
    private func snapshot() -> FourLetterWordSnapshot {
        var status = ReplicaStatus()
        status.mode = "standalone"
        status.lastZxid = 0x17
        status.nodeCount = 12
        status.outstandingRequests = 0
        status.watchCount = 3
        status.watchedPathCount = 2
        status.ephemeralsCount = 1
        status.approximateDataSize = 345
        status.connections = [
            ReplicaStatus.Connection(
                id: 1, peerAddress: "127.0.0.1", peerPort: 50001, sessionId: 0x0100_0003_6488_0000,
                sessionTimeoutMs: 4000, outstandingRequests: 0, lastZxid: 0x17, watchCount: 3)
        ]
        status.watchesByConnection = [1: ["/b", "/a"], 2: []]
        status.watchingConnectionCount = 1
        status.sessions = [
            ReplicaStatus.Session(id: 0x0100_0003_6488_0000, timeoutMs: 4000, expiresAtMs: 1_764_428_400_000, ephemerals: ["/e"])
        ]
        var config = ReplicaConfig()
        config.clientPort = 2181
        config.dataDir = "/var/lib/minizk"
        var server = ServerStatistics()
        server.packetsReceived = 36
        server.packetsSent = 39
        server.latency.record(ms: 0)
        server.latency.record(ms: 12)
        server.latency.record(ms: 3)
        var first = ConnectionStatistics(id: 1, peerAddress: "127.0.0.1", peerPort: 50001, establishedAtMs: 1_764_428_000_000)
        first.packetsReceived = 5
        first.packetsSent = 6
        first.lastOperation = "GETD"
        first.lastCxid = 4
        first.lastZxid = 0x17
        first.lastResponseAtMs = 1_764_428_001_000
        first.lastLatencyMs = 1
        first.latency.record(ms: 1)
        first.latency.record(ms: 2)
        let asking = ConnectionStatistics(id: 2, peerAddress: "127.0.0.1", peerPort: 50002, establishedAtMs: 1_764_428_002_000)
        return FourLetterWordSnapshot(
            status: status, config: config, server: server, connections: [first, asking],
            environment: [EnvironmentEntry("host.name", "box")], nowMs: 1_764_428_010_000,
            startedAtMs: 1_764_428_000_000, openFileDescriptorCount: 17, maxFileDescriptorCount: 1024)
    }

    func testRuokIsroAndTraceMask() {
        XCTAssertEqual(FourLetterWordResponder.respond(to: .ruok, snapshot: snapshot()), "imok")
        XCTAssertEqual(FourLetterWordResponder.respond(to: .isro, snapshot: snapshot()), "rw")
        XCTAssertEqual(FourLetterWordResponder.respond(to: .gtmk, snapshot: snapshot()), "306")
    }

    func testSrvr() {
        XCTAssertEqual(
            FourLetterWordResponder.respond(to: .srvr, snapshot: snapshot()),
            """
            Zookeeper version: 3.8.0-MiniZK-0.1, built on 2026-01-01 00:00 UTC
            Latency min/avg/max: 0/5.0/12
            Received: 36
            Sent: 39
            Connections: 2
            Outstanding: 0
            Zxid: 0x17
            Mode: standalone
            Node count: 12

            """)
    }

    func testStatListsClientsBriefly() {
        let text = FourLetterWordResponder.respond(to: .stat, snapshot: snapshot())
        XCTAssertTrue(
            text.hasPrefix(
                """
                Zookeeper version: 3.8.0-MiniZK-0.1, built on 2026-01-01 00:00 UTC
                Clients:
                 /127.0.0.1:50001[1](queued=0,recved=5,sent=6)
                 /127.0.0.1:50002[1](queued=0,recved=0,sent=0)

                Latency min/avg/max: 0/5.0/12

                """), text)
    }

    func testCons() {
        XCTAssertEqual(
            FourLetterWordResponder.respond(to: .cons, snapshot: snapshot()),
            " /127.0.0.1:50001[1](queued=0,recved=5,sent=6,sid=0x100000364880000,lop=GETD,est=1764428000000,"
                + "to=4000,lcxid=0x4,lzxid=0x17,lresp=1764428001000,llat=1,minlat=1,avglat=1,maxlat=2)\n"
                + " /127.0.0.1:50002[1](queued=0,recved=0,sent=0)\n\n")
    }

    func testMntrLinesAreTabSeparatedWithIntegers() {
        let text = FourLetterWordResponder.respond(to: .mntr, snapshot: snapshot())
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(Array(lines.prefix(2)), ["zk_version\t3.8.0-MiniZK-0.1, built on 2026-01-01 00:00 UTC", "zk_server_state\tstandalone"])
        XCTAssertTrue(lines.contains("zk_avg_latency\t5.0"))
        XCTAssertTrue(lines.contains("zk_max_latency\t12"))
        XCTAssertTrue(lines.contains("zk_min_latency\t0"))
        XCTAssertTrue(lines.contains("zk_packets_received\t36"))
        XCTAssertTrue(lines.contains("zk_packets_sent\t39"))
        XCTAssertTrue(lines.contains("zk_num_alive_connections\t2"))
        XCTAssertTrue(lines.contains("zk_outstanding_requests\t0"))
        XCTAssertTrue(lines.contains("zk_znode_count\t12"))
        XCTAssertTrue(lines.contains("zk_watch_count\t3"))
        XCTAssertTrue(lines.contains("zk_ephemerals_count\t1"))
        XCTAssertTrue(lines.contains("zk_approximate_data_size\t345"))
        XCTAssertTrue(lines.contains("zk_open_file_descriptor_count\t17"))
        XCTAssertTrue(lines.contains("zk_max_file_descriptor_count\t1024"))
        for line in lines {
            XCTAssertEqual(line.split(separator: "\t", omittingEmptySubsequences: false).count, 2, line)
        }
    }

    func testConfAndEnviAndDirs() {
        let conf = FourLetterWordResponder.respond(to: .conf, snapshot: snapshot())
        XCTAssertTrue(conf.hasPrefix("clientPort=2181\n"))
        XCTAssertTrue(conf.contains("\ndataDir=/var/lib/minizk\n"))
        XCTAssertTrue(conf.contains("\ntickTime=2000\n"))
        XCTAssertTrue(conf.contains("\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n"))
        XCTAssertTrue(conf.contains("\nserverId=1\n"))
        XCTAssertFalse(conf.contains("membership"), "a standalone server has no quorum section")

        // An ensemble member adds its quorum settings and the membership, as ZooKeeper 3.5+.
        var member = snapshot()
        member.status.ensemble = try! EnsembleConfig(
            parsing: "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nserver.2=127.0.0.1:2889:3889:observer;127.0.0.1:2182\nversion=100000000")
        let quorum = FourLetterWordResponder.respond(to: .conf, snapshot: member)
        XCTAssertTrue(quorum.hasSuffix(
            "\nserverId=1\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\nelectionPort=3888\nquorumPort=2888\npeerType=0\nmembership: \n"
                + "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nserver.2=127.0.0.1:2889:3889:observer;127.0.0.1:2182\nversion=100000000"),
            quorum)

        XCTAssertEqual(
            FourLetterWordResponder.respond(to: .envi, snapshot: snapshot()),
            "Environment:\nzookeeper.version=3.8.0-MiniZK-0.1, built on 2026-01-01 00:00 UTC\nhost.name=box\n")
        XCTAssertEqual(
            FourLetterWordResponder.respond(to: .dirs, snapshot: snapshot()), "datadir_size: 0\nlogdir_size: 0\n")
    }

    func testWatchCommands() {
        XCTAssertEqual(
            FourLetterWordResponder.respond(to: .wchs, snapshot: snapshot()),
            "1 connections watching 2 paths\nTotal watches:3\n\n")
        XCTAssertEqual(
            FourLetterWordResponder.respond(to: .wchc, snapshot: snapshot()),
            "0x100000364880000\n\t/a\n\t/b\n\n")
        XCTAssertEqual(
            FourLetterWordResponder.respond(to: .wchp, snapshot: snapshot()),
            "/a\n\t0x100000364880000\n/b\n\t0x100000364880000\n\n")
    }

    func testDump() {
        XCTAssertEqual(
            FourLetterWordResponder.respond(to: .dump, snapshot: snapshot()),
            """
            SessionTracker dump:
            Session Sets (1)/(1):
            1 expire at Sat Nov 29 15:00:00 UTC 2025:
            \t0x100000364880000
            ephemeral nodes dump:
            Sessions with Ephemerals (1):
            0x100000364880000:
            \t/e
            Connections dump:
            \t/127.0.0.1:50001 sid=0x100000364880000
            \t/127.0.0.1:50002 sid=0x0

            """)
    }

    func testJavaNumberFormats() {
        XCTAssertEqual(FourLetterWordResponder.javaDouble(0), "0.0")
        XCTAssertEqual(FourLetterWordResponder.javaDouble(12), "12.0")
        XCTAssertEqual(FourLetterWordResponder.javaDouble(2.531_25), "2.5313")
        XCTAssertEqual(FourLetterWordResponder.javaDouble(1.0 / 3.0), "0.3333")
        XCTAssertEqual(FourLetterWordResponder.hex(-1), "ffffffffffffffff")
        XCTAssertEqual(FourLetterWordResponder.hex(0x17), "17")
        XCTAssertEqual(FourLetterWordResponder.javaDate(ms: 0), "Thu Jan 01 00:00:00 UTC 1970")
        XCTAssertEqual(FourLetterWordResponder.javaDate(ms: 951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000")
    }

    func testLatencyStatistics() {
        var latency = LatencyStatistics()
        XCTAssertEqual(latency.minMs, 0)
        XCTAssertEqual(latency.averageMs, 0)
        latency.record(ms: 4)
        latency.record(ms: 2)
        latency.record(ms: -3)  // A clock step backwards counts as zero.
        XCTAssertEqual(latency.minMs, 0)
        XCTAssertEqual(latency.maxMs, 4)
        XCTAssertEqual(latency.averageMs, 2)
    }
}
