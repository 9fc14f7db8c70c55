import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.test.TestingCluster;
import org.apache.curator.test.TestingServer;
import org.apache.curator.test.TestingZooKeeperServer;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

/**
 * The Curator side of scripts/zktesting-bench.sh, written the way a Curator user writes these
 * tests: Curator's TestingServer / TestingCluster with a plain ZooKeeper client.
 *
 *   startup server|cluster   start to a client's first successful write, then close
 *   expiry                   a session with an ephemeral goes silent and expires (TestingServer)
 *   failover                 TestingCluster(3): kill the leader, write again
 *
 * Prints the scenario's wall time; asserts nothing beyond the scenario having happened.
 */
public class CuratorTestingBench {
    static ZooKeeper connect(String connectString, int timeoutMs) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connectString, timeoutMs, event -> {
            if (event.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
        });
        if (!connected.await(60, TimeUnit.SECONDS)) throw new IllegalStateException("not connected");
        return zk;
    }

    static void writeUntilOk(ZooKeeper zk, String path) throws Exception {
        long deadline = System.currentTimeMillis() + 120_000;
        while (true) {
            try {
                zk.create(path, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                return;
            } catch (KeeperException.NodeExistsException e) {
                return;
            } catch (KeeperException e) {
                if (System.currentTimeMillis() > deadline) throw e;
                Thread.sleep(10);
            }
        }
    }

    /** The server's mode from the four-letter word srvr (allowed by default). */
    static String mode(int port) {
        try (java.net.Socket socket = new java.net.Socket("127.0.0.1", port)) {
            socket.getOutputStream().write("srvr".getBytes());
            String text = new String(socket.getInputStream().readAllBytes());
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("Mode: (\\w+)").matcher(text);
            return m.find() ? m.group(1) : "";
        } catch (java.io.IOException e) {
            return "";
        }
    }

    public static void main(String[] args) throws Exception {
        String scenario = args[0];
        long started = System.nanoTime();
        switch (scenario) {
            case "startup": {
                if (args[1].equals("server")) {
                    try (TestingServer server = new TestingServer()) {
                        ZooKeeper zk = connect(server.getConnectString(), 10_000);
                        writeUntilOk(zk, "/first-write");
                        zk.close();
                    }
                } else {
                    try (TestingCluster cluster = new TestingCluster(3)) {
                        cluster.start();
                        ZooKeeper zk = connect(cluster.getConnectString(), 10_000);
                        writeUntilOk(zk, "/first-write");
                        zk.close();
                    }
                }
                break;
            }
            case "expiry": {
                try (TestingServer server = new TestingServer()) {
                    // 4 s asked; the server grants at least 2 ticks.
                    ZooKeeper zk = connect(server.getConnectString(), 4000);
                    zk.create("/ephemeral", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
                    long setUp = System.nanoTime();
                    // The client goes silent (its connection closes, no more pings) ...
                    zk.getTestable().injectSessionExpiration();
                    ZooKeeper observer = connect(server.getConnectString(), 30_000);
                    // ... and the server expires the session after its timeout.
                    while (observer.exists("/ephemeral", false) != null) Thread.sleep(10);
                    System.out.printf("expiry itself %.2f s (session timeout %d ms)%n", (System.nanoTime() - setUp) / 1e9, zk.getSessionTimeout());
                    observer.close();
                    zk.close();
                }
                break;
            }
            case "failover": {
                try (TestingCluster cluster = new TestingCluster(3)) {
                    cluster.start();
                    ZooKeeper zk = connect(cluster.getConnectString(), 10_000);
                    writeUntilOk(zk, "/before");
                    TestingZooKeeperServer leader = null;
                    while (leader == null) {
                        for (TestingZooKeeperServer server : cluster.getServers()) {
                            if (mode(server.getInstanceSpec().getPort()).equals("leader")) leader = server;
                        }
                        if (leader == null) Thread.sleep(10);
                    }
                    long setUp = System.nanoTime();
                    cluster.killServer(leader.getInstanceSpec());
                    writeUntilOk(zk, "/after");
                    System.out.printf("fail-over itself %.2f s%n", (System.nanoTime() - setUp) / 1e9);
                    zk.close();
                }
                break;
            }
            default:
                throw new IllegalArgumentException(scenario);
        }
        System.out.printf("%s %s wall %.2f s%n", scenario, args.length > 1 ? args[1] : "", (System.nanoTime() - started) / 1e9);
        System.exit(0);
    }
}
