// The Java side of MiniZK's recipe interoperability check (scripts/recipes-interop.sh): Apache
// Curator 5.4's recipes on the same paths as the Swift side (zkrecipes-interop).
//
// mutex and latch contenders append "ready ID" to MARKS and wait for the file MARKS.go, so that all start together.
//   mutex    CONNECT PATH ROUNDS MARKS ID   InterProcessMutex; appends "enter ID"/"exit ID" to MARKS while holding
//   rwlock   CONNECT PATH ROUNDS MARKS ID   InterProcessReadWriteLock: the read lock when ID contains "-read-", else the write lock
//   semaphore CONNECT PATH MAX ROUNDS MARKS ID  InterProcessSemaphoreV2 with MAX leases
//   double-barrier CONNECT PATH MEMBERS MARKS ID  DistributedDoubleBarrier: marks arrive/entered/leaving/left
//   latch    CONNECT PATH MARKS ID          LeaderLatch; appends enter/exit while leader, then leaves
//   counter  CONNECT PATH N MARKS ID        DistributedAtomicLong.increment() N times
//   register CONNECT BASE NAME ID SECONDS   ServiceDiscovery.registerService, kept SECONDS
//   discover CONNECT BASE NAME ID SECONDS   waits up to SECONDS for instance ID; prints its JSON fields
//   get      CONNECT PATH                   prints DistributedAtomicLong.get()
//   queue-put  CONNECT PATH PREFIX N        DistributedQueue.put of N messages PREFIX-i
//   queue-take CONNECT PATH SECONDS         consumes messages for SECONDS (20 ms each); prints "took <message>" each
//   delay-put  CONNECT PATH PREFIX N DELAYMS  DistributedDelayQueue.put of N messages PREFIX-i@EPOCH, due DELAYMS from now
//   delay-take CONNECT PATH SECONDS         DistributedDelayQueue consumer for SECONDS; prints "took <message> at <epoch ms>"
//   group-watch CONNECT PATH ID MEMBER DATA SECONDS  GroupMember ID; waits until MEMBER is a member with DATA; prints the members
import java.io.FileOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.nodes.GroupMember;
import org.apache.curator.framework.recipes.queue.DistributedDelayQueue;
import org.apache.curator.framework.recipes.queue.DistributedQueue;
import org.apache.curator.framework.recipes.queue.QueueBuilder;
import org.apache.curator.framework.recipes.queue.QueueConsumer;
import org.apache.curator.framework.recipes.queue.QueueSerializer;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;

public class CuratorInterop {
    static void mark(String marks, String line) throws Exception {
        try (FileOutputStream out = new FileOutputStream(marks, true)) {
            out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        }
    }

    /** Appends "ready ID" to MARKS, then waits for MARKS.go: every contender starts together. */
    static void ready(String marks, String id) throws Exception {
        mark(marks, "ready " + id);
        while (!new java.io.File(marks + ".go").exists()) Thread.sleep(5);
    }

    static final QueueSerializer<String> STRINGS = new QueueSerializer<String>() {
        public byte[] serialize(String item) { return item.getBytes(StandardCharsets.UTF_8); }
        public String deserialize(byte[] bytes) { return new String(bytes, StandardCharsets.UTF_8); }
    };

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        CuratorFramework client = CuratorFrameworkFactory.newClient(args[1], 10000, 5000, new ExponentialBackoffRetry(100, 10));
        client.start();
        if (!client.blockUntilConnected(20, TimeUnit.SECONDS)) throw new IllegalStateException("not connected");
        try {
            switch (mode) {
                case "mutex": {
                    InterProcessMutex mutex = new InterProcessMutex(client, args[2]);
                    int rounds = Integer.parseInt(args[3]);
                    ready(args[4], args[5]);
                    for (int i = 0; i < rounds; i++) {
                        mutex.acquire();
                        mark(args[4], "enter " + args[5]);
                        Thread.sleep(20);
                        mark(args[4], "exit " + args[5]);
                        mutex.release();
                    }
                    break;
                }
                case "rwlock": {
                    InterProcessReadWriteLock rw = new InterProcessReadWriteLock(client, args[2]);
                    InterProcessMutex lock = args[5].contains("-read-") ? rw.readLock() : rw.writeLock();
                    int rounds = Integer.parseInt(args[3]);
                    ready(args[4], args[5]);
                    for (int i = 0; i < rounds; i++) {
                        lock.acquire();
                        mark(args[4], "enter " + args[5]);
                        Thread.sleep(15);
                        mark(args[4], "exit " + args[5]);
                        lock.release();
                    }
                    break;
                }
                case "semaphore": {
                    InterProcessSemaphoreV2 semaphore = new InterProcessSemaphoreV2(client, args[2], Integer.parseInt(args[3]));
                    int rounds = Integer.parseInt(args[4]);
                    ready(args[5], args[6]);
                    for (int i = 0; i < rounds; i++) {
                        Lease lease = semaphore.acquire();
                        mark(args[5], "enter " + args[6]);
                        Thread.sleep(15);
                        mark(args[5], "exit " + args[6]);
                        semaphore.returnLease(lease);
                    }
                    break;
                }
                case "double-barrier": {
                    DistributedDoubleBarrier barrier = new DistributedDoubleBarrier(client, args[2], Integer.parseInt(args[3]));
                    ready(args[4], args[5]);
                    mark(args[4], "arrive " + args[5]);
                    barrier.enter();
                    mark(args[4], "entered " + args[5]);
                    Thread.sleep(50);
                    mark(args[4], "leaving " + args[5]);
                    barrier.leave();
                    mark(args[4], "left " + args[5]);
                    break;
                }
                case "latch": {
                    LeaderLatch latch = new LeaderLatch(client, args[2], args[4]);
                    ready(args[3], args[4]);
                    latch.start();
                    latch.await();
                    mark(args[3], "enter " + args[4]);
                    Thread.sleep(300);
                    mark(args[3], "exit " + args[4]);
                    latch.close();
                    break;
                }
                case "counter": {
                    DistributedAtomicLong counter = new DistributedAtomicLong(client, args[2], new RetryNTimes(1000, 1));
                    int n = Integer.parseInt(args[3]);
                    ready(args[4], args[5]);
                    for (int i = 0; i < n; i++) {
                        AtomicValue<Long> result = counter.increment();
                        while (!result.succeeded()) result = counter.increment();
                    }
                    break;
                }
                case "get": {
                    System.out.println(new DistributedAtomicLong(client, args[2], new RetryNTimes(3, 100)).get().postValue());
                    break;
                }
                case "register": {
                    ServiceDiscovery<Void> discovery = ServiceDiscoveryBuilder.builder(Void.class).client(client).basePath(args[2])
                        .serializer(new JsonInstanceSerializer<>(Void.class)).build();
                    discovery.start();
                    discovery.registerService(ServiceInstance.<Void>builder().name(args[3]).id(args[4]).address("127.0.0.2").port(9090).build());
                    System.out.println("registered " + args[4]);
                    System.out.flush();
                    Thread.sleep(Long.parseLong(args[5]) * 1000);
                    discovery.close();
                    break;
                }
                case "discover": {
                    ServiceDiscovery<Object> discovery = ServiceDiscoveryBuilder.builder(Object.class).client(client).basePath(args[2])
                        .serializer(new JsonInstanceSerializer<>(Object.class)).build();
                    discovery.start();
                    long deadline = System.currentTimeMillis() + Long.parseLong(args[5]) * 1000;
                    while (true) {
                        ServiceInstance<Object> found = discovery.queryForInstance(args[3], args[4]);
                        if (found != null) {
                            System.out.println("found " + found.getName() + " " + found.getId() + " " + found.getAddress() + ":" + found.getPort()
                                + " type=" + found.getServiceType() + " payload=" + found.getPayload());
                            Collection<ServiceInstance<Object>> all = discovery.queryForInstances(args[3]);
                            System.out.println("instances " + all.size());
                            break;
                        }
                        if (System.currentTimeMillis() > deadline) { System.out.println("not found"); System.exit(1); }
                        Thread.sleep(100);
                    }
                    discovery.close();
                    break;
                }
                case "queue-put": {
                    DistributedQueue<String> queue = QueueBuilder.builder(client, null, STRINGS, args[2]).buildQueue();
                    queue.start();
                    int n = Integer.parseInt(args[4]);
                    for (int i = 0; i < n; i++) queue.put(args[3] + "-" + i);
                    queue.flushPuts(10, TimeUnit.SECONDS);
                    queue.close();
                    break;
                }
                case "queue-take": {
                    QueueConsumer<String> consumer = new QueueConsumer<String>() {
                        public void consumeMessage(String message) throws Exception {
                            System.out.println("took " + message);
                            System.out.flush();
                            Thread.sleep(20);
                        }
                        public void stateChanged(CuratorFramework c, ConnectionState s) {}
                    };
                    DistributedQueue<String> queue = QueueBuilder.builder(client, consumer, STRINGS, args[2]).buildQueue();
                    queue.start();
                    Thread.sleep(Long.parseLong(args[3]) * 1000);
                    queue.close();
                    break;
                }
                case "delay-put": {
                    DistributedDelayQueue<String> queue = QueueBuilder.builder(client, null, STRINGS, args[2]).buildDelayQueue();
                    queue.start();
                    int n = Integer.parseInt(args[4]);
                    for (int i = 0; i < n; i++) {
                        long due = System.currentTimeMillis() + Long.parseLong(args[5]);
                        queue.put(args[3] + "-" + i + "@" + due, due);
                    }
                    queue.flushPuts(10, TimeUnit.SECONDS);
                    queue.close();
                    break;
                }
                case "delay-take": {
                    QueueConsumer<String> consumer = new QueueConsumer<String>() {
                        public void consumeMessage(String message) throws Exception {
                            System.out.println("took " + message + " at " + System.currentTimeMillis());
                            System.out.flush();
                        }
                        public void stateChanged(CuratorFramework c, ConnectionState s) {}
                    };
                    DistributedDelayQueue<String> queue = QueueBuilder.builder(client, consumer, STRINGS, args[2]).buildDelayQueue();
                    queue.start();
                    Thread.sleep(Long.parseLong(args[3]) * 1000);
                    queue.close();
                    break;
                }
                case "group-watch": {
                    GroupMember group = new GroupMember(client, args[2], args[3], "java".getBytes(StandardCharsets.UTF_8));
                    group.start();
                    long deadline = System.currentTimeMillis() + Long.parseLong(args[6]) * 1000;
                    while (true) {
                        java.util.Map<String, byte[]> members = group.getCurrentMembers();
                        byte[] data = members.get(args[4]);
                        if (data != null && new String(data, StandardCharsets.UTF_8).equals(args[5])) {
                            System.out.println("members " + new java.util.TreeSet<>(members.keySet()) + " " + args[4] + "=" + args[5]);
                            break;
                        }
                        if (System.currentTimeMillis() > deadline) { System.out.println("not seen " + members.keySet()); System.exit(1); }
                        Thread.sleep(100);
                    }
                    group.close();
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown mode " + mode);
            }
        } finally {
            client.close();
        }
    }
}
