import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

/** Checks with ZooKeeper's own Java client (org.apache.zookeeper.ZooKeeper, 3.8). */
final class ZooKeeperChecks {
    private final Ensemble ensemble;

    ZooKeeperChecks(Ensemble ensemble) {
        this.ensemble = ensemble;
    }

    /** The session states a handle's default watcher saw, in order. */
    static final class States implements Watcher {
        private final String name;
        private final List<KeeperState> seen = new ArrayList<>();

        States(String name) {
            this.name = name;
        }

        @Override
        public void process(WatchedEvent event) {
            if (event.getType() != EventType.None) return;
            synchronized (seen) {
                seen.add(event.getState());
            }
            JavaClientChecks.log(name + ": " + event.getState());
        }

        int count(KeeperState state) {
            synchronized (seen) {
                return (int) seen.stream().filter(s -> s == state).count();
            }
        }

        String history() {
            synchronized (seen) {
                return seen.toString();
            }
        }

        void awaitCount(KeeperState state, int count, String what) throws Exception {
            try {
                JavaClientChecks.await(what, JavaClientChecks.WAIT_MS, () -> count(state) >= count);
            } catch (JavaClientChecks.CheckFailed failed) {
                throw new JavaClientChecks.CheckFailed(failed.getMessage() + " (" + name + " saw " + history() + ")");
            }
        }
    }

    /** The path events one watcher received (session events are dropped). */
    static final class Events implements Watcher {
        private final String name;
        private final BlockingQueue<WatchedEvent> queue = new LinkedBlockingQueue<>();

        Events(String name) {
            this.name = name;
        }

        @Override
        public void process(WatchedEvent event) {
            if (event.getType() != EventType.None) queue.add(event);
        }

        void expect(EventType type, String path) throws Exception {
            WatchedEvent event = queue.poll(JavaClientChecks.WAIT_MS, TimeUnit.MILLISECONDS);
            JavaClientChecks.require(event != null,
                    name + " watch: no " + type + " " + path + " within " + JavaClientChecks.WAIT_MS / 1000 + " s");
            JavaClientChecks.require(event.getType() == type && path.equals(event.getPath()),
                    name + " watch: expected " + type + " " + path + ", got " + event.getType() + " " + event.getPath());
        }

        void expectNothingYet() throws Exception {
            WatchedEvent event = queue.poll();
            JavaClientChecks.require(event == null,
                    name + " watch fired again after it was used up: " + (event == null ? "" : event.getType() + " " + event.getPath()));
        }
    }

    static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    static Ensemble.MemberZooKeeper connect(String hosts, States states) throws Exception {
        Ensemble.MemberZooKeeper zk = new Ensemble.MemberZooKeeper(hosts, JavaClientChecks.SESSION_MS, states);
        try {
            states.awaitCount(KeeperState.SyncConnected, 1, "a session through " + hosts);
        } catch (Exception error) {
            zk.close();
            throw error;
        }
        return zk;
    }

    static void create(ZooKeeper zk, String path, String data, CreateMode mode) throws Exception {
        zk.create(path, bytes(data), ZooDefs.Ids.OPEN_ACL_UNSAFE, mode);
    }

    static void ensurePath(ZooKeeper zk, String path) throws Exception {
        try {
            create(zk, path, "", CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException exists) {
            // left by an earlier check on the same ensemble
        }
    }

    static void sync(ZooKeeper zk, String path) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        int[] rc = {0};
        zk.sync(path, (code, p, ctx) -> {
            rc[0] = code;
            done.countDown();
        }, null);
        JavaClientChecks.require(done.await(JavaClientChecks.WAIT_MS, TimeUnit.MILLISECONDS), "sync " + path + " did not answer");
        JavaClientChecks.require(rc[0] == 0, "sync " + path + ": " + KeeperException.Code.get(rc[0]));
    }

    /**
     * a) One-shot data/exists/child watches, a persistent and a persistent-recursive watch; the
     * member the client is connected to is killed with SIGKILL; the client must reconnect to
     * another member with the same session (one Disconnected, no flapping), its watches must be
     * set again on the new member (SetWatches) and fire on later changes, and requests must work.
     */
    void failoverKeepsSessionAndWatches() throws Exception {
        ensemble.allServing();
        String root = "/java-failover";
        States states = new States("client");
        try (Ensemble.MemberZooKeeper zk = connect(ensemble.all(), states)) {
            long session = zk.getSessionId();
            create(zk, root, "", CreateMode.PERSISTENT);
            create(zk, root + "/d", "v0", CreateMode.PERSISTENT);
            create(zk, root + "/kids", "", CreateMode.PERSISTENT);
            create(zk, root + "/p", "p0", CreateMode.PERSISTENT);
            create(zk, root + "/r", "", CreateMode.PERSISTENT);

            Events data = new Events("data");
            Events exists = new Events("exists");
            Events children = new Events("child");
            Events persistent = new Events("persistent");
            Events recursive = new Events("persistent-recursive");
            JavaClientChecks.require(Arrays.equals(zk.getData(root + "/d", data, null), bytes("v0")), "getData /d");
            JavaClientChecks.require(zk.exists(root + "/later", exists) == null, "exists of a missing node");
            JavaClientChecks.require(zk.getChildren(root + "/kids", children).isEmpty(), "getChildren /kids");
            zk.addWatch(root + "/p", persistent, AddWatchMode.PERSISTENT);
            zk.addWatch(root + "/r", recursive, AddWatchMode.PERSISTENT_RECURSIVE);

            int before = ensemble.memberOf(zk);
            JavaClientChecks.require(before > 0, "cannot tell which member the client is connected to");
            JavaClientChecks.log(String.format("session 0x%x on member %d; kill -9 member %d", session, before, before));
            ensemble.kill(before);
            states.awaitCount(KeeperState.Disconnected, 1, "Disconnected after the kill");
            states.awaitCount(KeeperState.SyncConnected, 2, "SyncConnected again after the kill");
            JavaClientChecks.require(zk.getSessionId() == session,
                    String.format("session changed: 0x%x -> 0x%x", session, zk.getSessionId()));

            // Requests keep working on the new member.
            create(zk, root + "/own", "mine", CreateMode.PERSISTENT);
            JavaClientChecks.require(Arrays.equals(zk.getData(root + "/own", false, null), bytes("mine")),
                    "reading back a node written after the reconnect");
            int after = ensemble.memberOf(zk);
            JavaClientChecks.log("reconnected to member " + after + ", requests work");
            JavaClientChecks.require(after > 0 && after != before, "reconnected to member " + after + ", expected another member than " + before);

            // Later changes, made by another client, fire the watches set before the kill.
            try (ZooKeeper writer = connect(ensemble.allExcept(before), new States("writer"))) {
                writer.setData(root + "/d", bytes("v1"), -1);
                data.expect(EventType.NodeDataChanged, root + "/d");
                create(writer, root + "/later", "", CreateMode.PERSISTENT);
                exists.expect(EventType.NodeCreated, root + "/later");
                create(writer, root + "/kids/k1", "", CreateMode.PERSISTENT);
                children.expect(EventType.NodeChildrenChanged, root + "/kids");
                writer.setData(root + "/p", bytes("p1"), -1);
                persistent.expect(EventType.NodeDataChanged, root + "/p");
                writer.setData(root + "/p", bytes("p2"), -1);
                persistent.expect(EventType.NodeDataChanged, root + "/p");
                create(writer, root + "/r/x", "x0", CreateMode.PERSISTENT);
                recursive.expect(EventType.NodeCreated, root + "/r/x");
                writer.setData(root + "/r/x", bytes("x1"), -1);
                recursive.expect(EventType.NodeDataChanged, root + "/r/x");
                writer.delete(root + "/r/x", -1);
                recursive.expect(EventType.NodeDeleted, root + "/r/x");
                // One-shot watches are used up: more changes, then one the persistent watch reports
                // (notifications arrive in order), and nothing more on the one-shot watchers.
                writer.setData(root + "/d", bytes("v2"), -1);
                create(writer, root + "/kids/k2", "", CreateMode.PERSISTENT);
                writer.setData(root + "/p", bytes("p3"), -1);
                persistent.expect(EventType.NodeDataChanged, root + "/p");
                data.expectNothingYet();
                children.expectNothingYet();
            }
            JavaClientChecks.require(states.count(KeeperState.Disconnected) == 1 && states.count(KeeperState.SyncConnected) == 2,
                    "the connection did not stay up after the reconnect: " + states.history());
            JavaClientChecks.log("all five watches fired after the failover; states " + states.history());
        } finally {
            ensemble.allServing();
        }
    }

    /**
     * b) Client A on member X holds an ephemeral; a second handle on member Y with A's session id
     * and password closes the session. Member X must close A's connection within CLOSE_NOTICE_MS
     * (ZooKeeper does so when the closeSession commits on X), A must then see Expired, and the
     * ephemeral must be gone on every member.
     */
    static final long CLOSE_NOTICE_MS = 2000;

    void sessionClosedThroughAnotherMember() throws Exception {
        ensemble.allServing();
        List<Integer> ids = ensemble.ids();
        int x = ids.get(0), y = ids.get(1);
        String root = "/java-closed";
        States aStates = new States("A");
        try (ZooKeeper a = connect(ensemble.host(x), aStates)) {
            ensurePath(a, root);
            create(a, root + "/eph", "a", CreateMode.EPHEMERAL);
            long session = a.getSessionId();
            JavaClientChecks.log(String.format("A: session 0x%x on member %d holds %s/eph", session, x, root));

            States bStates = new States("B");
            ZooKeeper b = new ZooKeeper(ensemble.host(y), JavaClientChecks.SESSION_MS, bStates, session, a.getSessionPasswd());
            long closing;
            try {
                bStates.awaitCount(KeeperState.SyncConnected, 1, "B (A's session id and password) connected on member " + y);
                JavaClientChecks.require(b.getSessionId() == session, String.format("B got session 0x%x", b.getSessionId()));
            } finally {
                closing = System.nanoTime();
                b.close();
            }
            JavaClientChecks.log("B closed the session through member " + y);
            // Member X ends A's connection when the close commits, well before A's own read timeout
            // (two thirds of the session timeout) could notice a silent server.
            try {
                JavaClientChecks.await("member " + x + " closing A's connection", CLOSE_NOTICE_MS,
                        () -> aStates.count(KeeperState.Disconnected) >= 1);
            } catch (JavaClientChecks.CheckFailed failed) {
                throw new JavaClientChecks.CheckFailed(failed.getMessage() + " (A saw " + aStates.history() + ")");
            }
            aStates.awaitCount(KeeperState.Expired, 1, "A seeing Expired after its session was closed through member " + y);
            JavaClientChecks.log(String.format("A saw Expired %.2f s after the close", (System.nanoTime() - closing) / 1e9));
        }
        for (int id : ids) {
            try (ZooKeeper reader = connect(ensemble.host(id), new States("reader@" + id))) {
                sync(reader, root);
                JavaClientChecks.require(reader.exists(root + "/eph", false) == null,
                        "member " + id + " still has " + root + "/eph");
            }
        }
        JavaClientChecks.log("the ephemeral is gone on every member");
    }
}
