import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.zookeeper.ZooKeeper;

/** Checks with Apache Curator 5.4 recipes. */
final class CuratorChecks {
    private final Ensemble ensemble;

    CuratorChecks(Ensemble ensemble) {
        this.ensemble = ensemble;
    }

    /** A started Curator client whose ZooKeeper handles can tell their member, and its states. */
    static final class Client implements AutoCloseable {
        final String name;
        final CuratorFramework framework;
        final List<ConnectionState> states = new CopyOnWriteArrayList<>();

        Client(String name, String hosts) throws Exception {
            this.name = name;
            framework = CuratorFrameworkFactory.builder()
                    .connectString(hosts)
                    .sessionTimeoutMs(JavaClientChecks.SESSION_MS)
                    .connectionTimeoutMs(JavaClientChecks.SESSION_MS)
                    .retryPolicy(new RetryNTimes(40, 250))
                    .zookeeperFactory((connect, timeout, watcher, readOnly) ->
                            new Ensemble.MemberZooKeeper(connect, timeout, watcher, readOnly))
                    .build();
            framework.getConnectionStateListenable().addListener((client, state) -> {
                states.add(state);
                JavaClientChecks.log(name + ": " + state);
            });
            framework.start();
            if (!framework.blockUntilConnected((int) JavaClientChecks.WAIT_MS, TimeUnit.MILLISECONDS)) {
                framework.close();
                throw new JavaClientChecks.CheckFailed(name + " did not connect within " + JavaClientChecks.WAIT_MS / 1000 + " s");
            }
        }

        ZooKeeper zooKeeper() throws Exception {
            return framework.getZookeeperClient().getZooKeeper();
        }

        @Override
        public void close() {
            framework.close();
        }
    }

    static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Ends `client`'s session on the servers the way an operator's tool would: a second handle,
     * opened on another member with the same session id and password, closes it. (Curator's
     * KillSession only simulates expiry inside the client.)
     */
    void closeSessionThroughAnotherMember(Client client) throws Exception {
        ZooKeeper zk = client.zooKeeper();
        int member = ensemble.memberOf(zk);
        int other = ensemble.other(member);
        ZooKeeperChecks.States states = new ZooKeeperChecks.States("session-closer");
        ZooKeeper closer = new ZooKeeper(ensemble.host(other), JavaClientChecks.SESSION_MS, states,
                zk.getSessionId(), zk.getSessionPasswd());
        try {
            states.awaitCount(org.apache.zookeeper.Watcher.Event.KeeperState.SyncConnected, 1,
                    "a second handle on " + client.name + "'s session");
        } finally {
            closer.close();
        }
        JavaClientChecks.log(String.format("closed %s's session 0x%x (member %d) through member %d",
                client.name, zk.getSessionId(), member, other));
    }

    /**
     * c) Two LeaderLatches; the leader's session is closed through another member. The other latch
     * must take over, the old leader's client must see LOST and give up leadership, and the two
     * must never both claim leadership (a watcher thread samples both every few milliseconds; an
     * overlap shorter than OVERLAP_LIMIT_MS is the unavoidable delay between two clients learning
     * of one commit and is reported, not failed).
     */
    static final long OVERLAP_LIMIT_MS = 1000;

    void leaderLatchAfterSessionKilled() throws Exception {
        ensemble.allServing();
        String path = "/curator/latch";
        try (Client one = new Client("one", ensemble.all()); Client two = new Client("two", ensemble.all())) {
            LeaderLatch first = new LeaderLatch(one.framework, path, "one");
            LeaderLatch second = new LeaderLatch(two.framework, path, "two");
            first.start();
            JavaClientChecks.require(first.await(JavaClientChecks.WAIT_MS, TimeUnit.MILLISECONDS), "the first latch never led");
            second.start();
            JavaClientChecks.await("both latches among the participants", JavaClientChecks.WAIT_MS, () -> {
                try {
                    return first.getParticipants().size() == 2;
                } catch (Exception e) {
                    return false;
                }
            });
            JavaClientChecks.require(first.hasLeadership() && !second.hasLeadership(), "expected 'one' alone to lead");

            AtomicBoolean sampling = new AtomicBoolean(true);
            AtomicLong overlapSince = new AtomicLong(0), longestOverlap = new AtomicLong(0);
            Thread sampler = new Thread(() -> {
                while (sampling.get()) {
                    long now = System.nanoTime();
                    if (first.hasLeadership() && second.hasLeadership()) {
                        overlapSince.compareAndSet(0, now);
                        longestOverlap.accumulateAndGet(now - overlapSince.get(), Math::max);
                    } else {
                        overlapSince.set(0);
                    }
                    try {
                        Thread.sleep(2);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "latch-sampler");
            sampler.setDaemon(true);
            sampler.start();
            try {
                closeSessionThroughAnotherMember(one);
                JavaClientChecks.await("'two' leading after 'one''s session ended", JavaClientChecks.WAIT_MS, second::hasLeadership);
                JavaClientChecks.await("'one' seeing LOST (states " + one.states + ")", JavaClientChecks.WAIT_MS,
                        () -> one.states.contains(ConnectionState.LOST));
                JavaClientChecks.await("'one' giving up leadership", JavaClientChecks.WAIT_MS, () -> !first.hasLeadership());
                Thread.sleep(300); // both settled: 'one' rejoins behind 'two' and must not lead again
            } finally {
                sampling.set(false);
                sampler.join(1000);
            }
            long overlapMs = TimeUnit.NANOSECONDS.toMillis(longestOverlap.get());
            JavaClientChecks.log("longest time both latches claimed leadership: " + overlapMs + " ms; one: " + one.states);
            JavaClientChecks.require(overlapMs < OVERLAP_LIMIT_MS, "two leaders at once for " + overlapMs + " ms");
            JavaClientChecks.require(second.hasLeadership() && !first.hasLeadership(), "expected 'two' alone to lead at the end");
            first.close();
            second.close();
        }
    }

    /** InterProcessMutex from three clients with two threads each: never held by two at once. */
    void mutexNeverHeldTwice() throws Exception {
        ensemble.allServing();
        String path = "/curator/mutex";
        int clients = 3, threadsPerClient = 2, rounds = 4;
        List<Client> opened = new ArrayList<>();
        AtomicInteger holders = new AtomicInteger(), mostHolders = new AtomicInteger(), acquired = new AtomicInteger();
        ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
        try {
            for (int i = 0; i < clients; i++) opened.add(new Client("mutex-" + i, ensemble.all()));
            List<Thread> threads = new ArrayList<>();
            for (Client client : opened) {
                for (int t = 0; t < threadsPerClient; t++) {
                    InterProcessMutex mutex = new InterProcessMutex(client.framework, path);
                    Thread thread = new Thread(() -> {
                        try {
                            for (int round = 0; round < rounds; round++) {
                                if (!mutex.acquire(JavaClientChecks.WAIT_MS, TimeUnit.MILLISECONDS)) {
                                    problems.add("an acquire timed out");
                                    return;
                                }
                                try {
                                    mostHolders.accumulateAndGet(holders.incrementAndGet(), Math::max);
                                    acquired.incrementAndGet();
                                    Thread.sleep(10);
                                    holders.decrementAndGet();
                                } finally {
                                    mutex.release();
                                }
                            }
                        } catch (Exception error) {
                            problems.add(error.toString());
                        }
                    });
                    threads.add(thread);
                }
            }
            threads.forEach(Thread::start);
            for (Thread thread : threads) thread.join(JavaClientChecks.CHECK_MS / 2);
            JavaClientChecks.require(problems.isEmpty(), "mutex: " + problems);
            int expected = clients * threadsPerClient * rounds;
            JavaClientChecks.log("acquired " + acquired.get() + " times, at most " + mostHolders.get() + " holder(s) at once");
            JavaClientChecks.require(acquired.get() == expected, "acquired " + acquired.get() + " of " + expected + " times");
            JavaClientChecks.require(mostHolders.get() == 1, "held by " + mostHolders.get() + " at once");
            ZooKeeperChecks.sync(opened.get(0).zooKeeper(), path); // the last release may be on another member
            List<String> left = opened.get(0).framework.getChildren().forPath(path);
            JavaClientChecks.require(left.isEmpty(), "lock nodes left behind: " + left);
        } finally {
            opened.forEach(Client::close);
        }
    }

    /** Every event a CuratorCache reported, as "CREATE path data", "CHANGE path data", "DELETE path". */
    static final class CacheEvents {
        final List<String> seen = new CopyOnWriteArrayList<>();

        CuratorCacheListener listener() {
            return CuratorCacheListener.builder()
                    .forCreates(node -> add("CREATE", node))
                    .forChanges((old, node) -> add("CHANGE", node))
                    .forDeletes(node -> seen.add("DELETE " + node.getPath()))
                    .build();
        }

        private void add(String kind, ChildData node) {
            byte[] data = node.getData();
            seen.add(kind + " " + node.getPath() + " " + (data == null ? "" : new String(data, StandardCharsets.UTF_8)));
        }

        void expect(String event) throws Exception {
            JavaClientChecks.await("CuratorCache event '" + event + "' (seen " + seen + ")", JavaClientChecks.WAIT_MS,
                    () -> seen.contains(event));
        }
    }

    /**
     * CuratorCache (a persistent recursive watch) sees creates, changes and deletes, and keeps
     * seeing them after the member its client is connected to is killed and it reconnects.
     */
    void curatorCacheAcrossFailover() throws Exception {
        ensemble.allServing();
        String root = "/curator/cache";
        try (Client watching = new Client("cache", ensemble.all())) {
            int member = ensemble.memberOf(watching.zooKeeper());
            JavaClientChecks.require(member > 0, "cannot tell which member the cache's client is connected to");
            try (Client writer = new Client("writer", ensemble.allExcept(member))) {
                writer.framework.create().creatingParentsIfNeeded().forPath(root, bytes("root"));
                CacheEvents events = new CacheEvents();
                CuratorCache cache = CuratorCache.build(watching.framework, root);
                CountDownLatch initialized = new CountDownLatch(1);
                cache.listenable().addListener(events.listener());
                cache.listenable().addListener(CuratorCacheListener.builder().forInitialized(initialized::countDown).build());
                cache.start();
                try {
                    JavaClientChecks.require(initialized.await(JavaClientChecks.WAIT_MS, TimeUnit.MILLISECONDS), "the cache never initialized");
                    writer.framework.create().forPath(root + "/a", bytes("1"));
                    events.expect("CREATE " + root + "/a 1");
                    writer.framework.setData().forPath(root + "/a", bytes("2"));
                    events.expect("CHANGE " + root + "/a 2");
                    writer.framework.create().creatingParentsIfNeeded().forPath(root + "/b/c", bytes("deep"));
                    events.expect("CREATE " + root + "/b/c deep");
                    writer.framework.delete().forPath(root + "/a");
                    events.expect("DELETE " + root + "/a");

                    JavaClientChecks.log("cache client on member " + member + "; kill -9 member " + member);
                    int reconnectsBefore = count(watching.states, ConnectionState.RECONNECTED);
                    ensemble.kill(member);
                    JavaClientChecks.await("the cache's client RECONNECTED (states " + watching.states + ")", JavaClientChecks.WAIT_MS,
                            () -> count(watching.states, ConnectionState.RECONNECTED) > reconnectsBefore);
                    int now = ensemble.memberOf(watching.zooKeeper());
                    JavaClientChecks.log("cache client now on member " + now);

                    // The writer may have been cut off too (when the killed member led): Curator retries
                    // its requests, so each must be harmless when an earlier attempt took effect.
                    writer.framework.create().orSetData().forPath(root + "/after", bytes("x"));
                    events.expect("CREATE " + root + "/after x");
                    writer.framework.setData().forPath(root + "/after", bytes("y"));
                    events.expect("CHANGE " + root + "/after y");
                    writer.framework.delete().quietly().forPath(root + "/b/c");
                    events.expect("DELETE " + root + "/b/c");
                    JavaClientChecks.require(cache.get(root + "/after").map(d -> new String(d.getData(), StandardCharsets.UTF_8))
                            .orElse("<missing>").equals("y"), "the cache does not hold " + root + "/after = y");
                    JavaClientChecks.require(!watching.states.contains(ConnectionState.LOST), "the cache's client LOST its session");
                    JavaClientChecks.require(count(watching.states, ConnectionState.SUSPENDED) == 1,
                            "the cache's client did not stay connected after the reconnect: " + watching.states);
                    JavaClientChecks.log("events: " + events.seen);
                } finally {
                    cache.close();
                }
            }
        } finally {
            ensemble.allServing();
        }
    }

    static int count(List<ConnectionState> states, ConnectionState state) {
        return (int) states.stream().filter(s -> s == state).count();
    }

    /** curator-x-discovery: register an instance, find it from another client, unregister it. */
    void serviceDiscovery() throws Exception {
        ensemble.allServing();
        String base = "/curator/services";
        try (Client registrar = new Client("registrar", ensemble.all()); Client querier = new Client("querier", ensemble.all())) {
            ServiceDiscovery<Void> registering = ServiceDiscoveryBuilder.builder(Void.class)
                    .client(registrar.framework).basePath(base).build();
            ServiceDiscovery<Void> querying = ServiceDiscoveryBuilder.builder(Void.class)
                    .client(querier.framework).basePath(base).build();
            registering.start();
            querying.start();
            try {
                ServiceInstance<Void> web = ServiceInstance.<Void>builder().name("web").address("127.0.0.1").port(8080).build();
                ServiceInstance<Void> web2 = ServiceInstance.<Void>builder().name("web").address("127.0.0.1").port(8081).build();
                registering.registerService(web);
                registering.registerService(web2);
                JavaClientChecks.await("both instances visible to the other client", JavaClientChecks.WAIT_MS, () -> ids(querying, "web").size() == 2);
                Collection<String> names = querying.queryForNames();
                JavaClientChecks.require(names.contains("web"), "queryForNames: " + names);
                ServiceInstance<Void> found = querying.queryForInstance("web", web.getId());
                JavaClientChecks.require(found != null && found.getPort() == 8080 && "127.0.0.1".equals(found.getAddress()),
                        "queryForInstance: " + found);
                registering.unregisterService(web);
                JavaClientChecks.await("the unregistered instance gone", JavaClientChecks.WAIT_MS,
                        () -> ids(querying, "web").equals(Set.of(web2.getId())));
                registering.unregisterService(web2);
                JavaClientChecks.await("no instance left", JavaClientChecks.WAIT_MS, () -> ids(querying, "web").isEmpty());
                JavaClientChecks.log("registered, found, unregistered 2 instances of 'web'");
            } finally {
                querying.close();
                registering.close();
            }
        }
    }

    static Set<String> ids(ServiceDiscovery<Void> discovery, String name) {
        Set<String> ids = new HashSet<>();
        try {
            for (ServiceInstance<Void> instance : discovery.queryForInstances(name)) ids.add(instance.getId());
        } catch (Exception error) {
            ids.add("<" + error + ">");
        }
        return ids;
    }

    /**
     * SharedCount and DistributedAtomicLong incremented from three clients with two threads each:
     * every successful increment yields a distinct value and the final value counts them all.
     */
    void countersLoseNothing() throws Exception {
        ensemble.allServing();
        int clients = 3, threadsPerClient = 2, increments = 10;
        int total = clients * threadsPerClient * increments;
        List<Client> opened = new ArrayList<>();
        Set<Integer> sharedValues = java.util.Collections.synchronizedSet(new HashSet<>());
        Set<Long> atomicValues = java.util.Collections.synchronizedSet(new HashSet<>());
        ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
        List<SharedCount> counts = new ArrayList<>();
        try {
            for (int i = 0; i < clients; i++) opened.add(new Client("counter-" + i, ensemble.all()));
            List<Thread> threads = new ArrayList<>();
            for (Client client : opened) {
                SharedCount shared = new SharedCount(client.framework, "/curator/shared-count", 0);
                shared.start();
                counts.add(shared);
                DistributedAtomicLong atomic = new DistributedAtomicLong(client.framework, "/curator/atomic-long", new RetryNTimes(100, 5));
                for (int t = 0; t < threadsPerClient; t++) {
                    threads.add(new Thread(() -> {
                        try {
                            for (int i = 0; i < increments; i++) {
                                int attempts = 0;
                                while (true) {
                                    VersionedValue<Integer> value = shared.getVersionedValue();
                                    if (shared.trySetCount(value, value.getValue() + 1)) {
                                        if (!sharedValues.add(value.getValue() + 1)) problems.add("SharedCount value " + (value.getValue() + 1) + " set twice");
                                        break;
                                    }
                                    if (++attempts > 500) throw new IllegalStateException("SharedCount: 500 failed attempts");
                                }
                                attempts = 0;
                                while (true) {
                                    AtomicValue<Long> result = atomic.increment();
                                    if (result.succeeded()) {
                                        if (!atomicValues.add(result.postValue())) problems.add("DistributedAtomicLong value " + result.postValue() + " twice");
                                        break;
                                    }
                                    if (++attempts > 50) throw new IllegalStateException("DistributedAtomicLong: 50 failed increments");
                                }
                            }
                        } catch (Exception error) {
                            problems.add(error.toString());
                        }
                    }));
                }
            }
            threads.forEach(Thread::start);
            for (Thread thread : threads) thread.join(JavaClientChecks.CHECK_MS / 2);
            JavaClientChecks.require(problems.isEmpty(), "counters: " + problems);
            try (Client reader = new Client("reader", ensemble.all())) {
                ZooKeeperChecks.sync(reader.zooKeeper(), "/curator/shared-count"); // writes came through other members
                ZooKeeperChecks.sync(reader.zooKeeper(), "/curator/atomic-long");
                SharedCount shared = new SharedCount(reader.framework, "/curator/shared-count", 0);
                shared.start();
                int sharedFinal = shared.getCount();
                shared.close();
                long atomicFinal = new DistributedAtomicLong(reader.framework, "/curator/atomic-long", new RetryNTimes(3, 10)).get().postValue();
                JavaClientChecks.log("SharedCount " + sharedFinal + ", DistributedAtomicLong " + atomicFinal + ", expected " + total);
                JavaClientChecks.require(sharedFinal == total && sharedValues.size() == total, "SharedCount ended at " + sharedFinal
                        + " with " + sharedValues.size() + " distinct values, expected " + total);
                JavaClientChecks.require(atomicFinal == total && atomicValues.size() == total, "DistributedAtomicLong ended at " + atomicFinal
                        + " with " + atomicValues.size() + " distinct values, expected " + total);
            }
        } finally {
            for (SharedCount shared : counts) shared.close();
            opened.forEach(Client::close);
        }
    }
}
