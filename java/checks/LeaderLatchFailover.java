import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import io.minizk.testing.TestingCluster;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.retry.RetryForever;
import org.apache.curator.test.InstanceSpec;

/**
 * A Curator recipe test written against Curator's TestingCluster interface, run on MiniZK's
 * TestingCluster: leader-latch fail-over when the latch holder's session expires and when the
 * ZooKeeper leader dies. Prints "N passed, M failed".
 */
public class LeaderLatchFailover {
    private static int passed = 0;
    private static int failed = 0;

    private static void check(String name, boolean ok) {
        if (ok) {
            passed++;
            System.out.println("ok   " + name);
        } else {
            failed++;
            System.out.println("FAIL " + name);
        }
    }

    private static CuratorFramework client(TestingCluster cluster) {
        CuratorFramework client = CuratorFrameworkFactory.builder().connectString(cluster.getConnectString())
            .sessionTimeoutMs(10_000).connectionTimeoutMs(10_000).retryPolicy(new RetryForever(50)).build();
        client.start();
        return client;
    }

    private static boolean waitFor(java.util.function.BooleanSupplier condition, long ms) throws InterruptedException {
        long deadline = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < deadline) {
            if (condition.getAsBoolean()) return true;
            Thread.sleep(10);
        }
        return condition.getAsBoolean();
    }

    public static void main(String[] args) throws Exception {
        long started = System.nanoTime();
        try (TestingCluster cluster = new TestingCluster(3)) {
            cluster.start();
            check("three instances with distinct ports", cluster.getInstances().size() == 3
                && cluster.getInstances().stream().map(InstanceSpec::getPort).distinct().count() == 3);
            List<CuratorFramework> clients = new ArrayList<>();
            List<LeaderLatch> latches = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                CuratorFramework client = client(cluster);
                client.blockUntilConnected(20, TimeUnit.SECONDS);
                clients.add(client);
                LeaderLatch latch = new LeaderLatch(client, "/latch", "participant-" + i);
                latch.start();
                latches.add(latch);
            }
            check("one latch leads", waitFor(() -> latches.stream().filter(LeaderLatch::hasLeadership).count() == 1, 20_000));
            int holder = latches.get(0).hasLeadership() ? 0 : 1;
            int other = 1 - holder;
            InstanceSpec where = cluster.findConnectionInstance(clients.get(holder).getZookeeperClient().getZooKeeper());
            check("findConnectionInstance names a member", where != null);

            // The holder's session expires: the other participant takes over.
            cluster.expireSession(clients.get(holder).getZookeeperClient().getZooKeeper().getSessionId());
            check("the other latch leads after the holder's session expired",
                waitFor(() -> latches.get(other).hasLeadership(), 20_000));
            check("the expired holder does not lead", waitFor(() -> !latches.get(holder).hasLeadership(), 20_000));

            // The ZooKeeper leader dies: the latch survives the fail-over.
            InstanceSpec killed = cluster.killLeader();
            cluster.awaitReady();
            InstanceSpec newLeader = cluster.getLeader();
            check("a new ZooKeeper leader", newLeader != null && newLeader.getServerId() != killed.getServerId());
            check("the latch still leads after the server fail-over", waitFor(() -> latches.get(other).hasLeadership(), 20_000));
            check("the latch's client writes after the fail-over", waitFor(() -> {
                try {
                    clients.get(other).create().orSetData().forPath("/after-failover");
                    return true;
                } catch (Exception e) {
                    return false;
                }
            }, 20_000));
            check("restartServer brings the member back", cluster.restartServer(killed));
            check("killServer on a follower", cluster.killServer(cluster.getInstances().stream()
                .filter(s -> s.getServerId() != newLeader.getServerId() && s.getServerId() != killed.getServerId())
                .findFirst().orElseThrow()));
            for (LeaderLatch latch : latches) latch.close();
            for (CuratorFramework client : clients) client.close();
        }
        System.out.printf("wall %.2f s%n", (System.nanoTime() - started) / 1e9);
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
