import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;

/**
 * The three members the checks run against, and the runner that controls them.
 *
 * The runner (compat/java_ensemble.py) started the members and reads this program's standard
 * output. A line "@ctl COMMAND" asks it to act on the members; it answers with one line on
 * standard input: "ok ..." or "error ...". Commands: "kill N" (SIGKILL member N), "start N"
 * (start it again on its data and wait until it serves), "all-serving" (start whatever is down and
 * wait until every member serves with exactly one leader).
 */
final class Ensemble {
    private final Map<Integer, String> hostById = new TreeMap<>();
    private final BufferedReader control =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

    Ensemble(Map<Integer, String> hostById) {
        this.hostById.putAll(hostById);
    }

    List<Integer> ids() {
        return new ArrayList<>(hostById.keySet());
    }

    String host(int id) {
        String host = hostById.get(id);
        if (host == null) throw new IllegalArgumentException("no member " + id);
        return host;
    }

    /** The connect string of every member. */
    String all() {
        return String.join(",", hostById.values());
    }

    /** A connect string of every member but `id`. */
    String allExcept(int id) {
        return hostById.entrySet().stream().filter(e -> e.getKey() != id).map(Map.Entry::getValue)
                .collect(Collectors.joining(","));
    }

    /** Some member other than `id`. */
    int other(int id) {
        for (int candidate : hostById.keySet()) if (candidate != id) return candidate;
        throw new IllegalStateException("a single member");
    }

    /** The member whose client port is `port`, or -1. */
    int idOfPort(int port) {
        for (Map.Entry<Integer, String> entry : hostById.entrySet()) {
            if (entry.getValue().endsWith(":" + port)) return entry.getKey();
        }
        return -1;
    }

    /** The member a client built by {@link MemberZooKeeper} is connected to now, or -1. */
    int memberOf(ZooKeeper zk) {
        if (!(zk instanceof MemberZooKeeper)) throw new IllegalArgumentException("not a MemberZooKeeper");
        return idOfPort(((MemberZooKeeper) zk).remotePort());
    }

    void kill(int id) throws IOException {
        command("kill " + id);
    }

    void start(int id) throws IOException {
        command("start " + id);
    }

    void allServing() throws IOException {
        command("all-serving");
    }

    private String command(String command) throws IOException {
        String reply;
        synchronized (System.out) {
            System.out.println("@ctl " + command);
            System.out.flush();
            reply = control.readLine();
        }
        if (reply == null) throw new IOException("the runner closed the control channel");
        if (!reply.startsWith("ok")) throw new IOException("runner: " + command + ": " + reply);
        return reply;
    }

    /** A ZooKeeper handle that can tell which server its connection goes to. */
    static final class MemberZooKeeper extends ZooKeeper {
        MemberZooKeeper(String hosts, int sessionTimeoutMs, Watcher watcher) throws IOException {
            super(hosts, sessionTimeoutMs, watcher);
        }

        MemberZooKeeper(String hosts, int sessionTimeoutMs, Watcher watcher, boolean canBeReadOnly)
                throws IOException {
            super(hosts, sessionTimeoutMs, watcher, canBeReadOnly);
        }

        int remotePort() {
            try {
                SocketAddress address = testableRemoteSocketAddress();
                return address instanceof InetSocketAddress ? ((InetSocketAddress) address).getPort() : -1;
            } catch (RuntimeException notConnected) {
                return -1;
            }
        }
    }
}
