import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;

/**
 * ZooKeeper's Java client and Apache Curator against a three-member ensemble.
 *
 * usage: java JavaClientChecks [--only NAME[,NAME...]] 1=HOST:PORT 2=HOST:PORT 3=HOST:PORT
 *
 * Meant to run under compat/java_ensemble.py, which starts the members and answers the control
 * lines described in {@link Ensemble}. Every check prints "PASS name (seconds)" or
 * "FAIL name (seconds): reason"; the last line is "java-checks: N passed, N failed" and the exit
 * status is 1 when anything failed. Every wait is bounded, so a server that never answers makes
 * a check fail instead of hanging.
 */
public final class JavaClientChecks {
    /** The session timeout every client asks for; the servers' maxSessionTimeout is the same. */
    static final int SESSION_MS = 4000;
    /** The longest any single wait may take. */
    static final long WAIT_MS = 20_000;
    /** The longest a whole check may take before it is reported as hung. */
    static final long CHECK_MS = 90_000;

    static final long START = System.nanoTime();

    /** A check's failure, with the reason printed on its FAIL line. */
    static final class CheckFailed extends Exception {
        CheckFailed(String reason) {
            super(reason);
        }
    }

    interface Check {
        void run() throws Exception;
    }

    static void log(String text) {
        synchronized (System.out) {
            System.out.printf("  %7.3f  %s%n", (System.nanoTime() - START) / 1e9, text);
            System.out.flush();
        }
    }

    static void require(boolean condition, String reason) throws CheckFailed {
        if (!condition) throw new CheckFailed(reason);
    }

    /** Polls `condition` until it holds; fails with "WHAT not within N s" after `timeoutMs`. */
    static void await(String what, long timeoutMs, BooleanSupplier condition) throws CheckFailed, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new CheckFailed(what + " not within " + timeoutMs / 1000.0 + " s");
            }
            Thread.sleep(10);
        }
    }

    public static void main(String[] args) throws Exception {
        Map<Integer, String> members = new LinkedHashMap<>();
        List<String> only = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--only")) {
                for (String name : args[++i].split(",")) only.add(name.trim());
            } else {
                String[] parts = args[i].split("=", 2);
                members.put(Integer.parseInt(parts[0]), parts[1]);
            }
        }
        if (members.size() < 3) {
            System.err.println("usage: JavaClientChecks [--only NAMES] 1=HOST:PORT 2=HOST:PORT 3=HOST:PORT");
            System.exit(2);
        }
        Ensemble ensemble = new Ensemble(members);
        ZooKeeperChecks zk = new ZooKeeperChecks(ensemble);
        CuratorChecks curator = new CuratorChecks(ensemble);

        Map<String, Check> checks = new LinkedHashMap<>();
        checks.put("zk-failover-watches", zk::failoverKeepsSessionAndWatches);
        checks.put("zk-session-closed-elsewhere", zk::sessionClosedThroughAnotherMember);
        checks.put("curator-leader-latch", curator::leaderLatchAfterSessionKilled);
        checks.put("curator-mutex", curator::mutexNeverHeldTwice);
        checks.put("curator-cache-failover", curator::curatorCacheAcrossFailover);
        checks.put("curator-service-discovery", curator::serviceDiscovery);
        checks.put("curator-counters", curator::countersLoseNothing);

        int passed = 0, failed = 0;
        ExecutorService runner = Executors.newCachedThreadPool(task -> {
            Thread thread = new Thread(task, "check");
            thread.setDaemon(true);
            return thread;
        });
        for (Map.Entry<String, Check> entry : checks.entrySet()) {
            String name = entry.getKey();
            if (!only.isEmpty() && !only.contains(name)) continue;
            log("---- " + name);
            long began = System.nanoTime();
            String failure = null;
            Future<?> outcome = runner.submit(() -> {
                entry.getValue().run();
                return null;
            });
            try {
                outcome.get(CHECK_MS, TimeUnit.MILLISECONDS);
            } catch (TimeoutException hung) {
                outcome.cancel(true);
                failure = "did not finish within " + CHECK_MS / 1000 + " s";
            } catch (ExecutionException error) {
                Throwable cause = error.getCause();
                failure = cause instanceof CheckFailed ? cause.getMessage() : cause.toString();
            }
            double seconds = (System.nanoTime() - began) / 1e9;
            synchronized (System.out) {
                if (failure == null) {
                    passed++;
                    System.out.printf("PASS %s (%.1f s)%n", name, seconds);
                } else {
                    failed++;
                    System.out.printf("FAIL %s (%.1f s): %s%n", name, seconds, failure);
                }
                System.out.flush();
            }
        }
        System.out.printf("java-checks: %d passed, %d failed%n", passed, failed);
        System.out.flush();
        System.exit(failed == 0 ? 0 : 1);
    }
}
