package io.minizk.testing;

import java.io.BufferedReader;
import java.io.Closeable;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.curator.test.InstanceSpec;
import org.apache.zookeeper.ZooKeeper;

/**
 * A MiniZK ensemble with the interface of Curator's {@code org.apache.curator.test.TestingCluster}:
 * a test suite switches by changing one import. The members run in one {@code minizk ensemble
 * --control} process (no JVM per server, ports chosen by the system and kept across restarts),
 * driven over its HTTP control API; beyond Curator's methods it has the faults and the manual
 * clock of that API ({@link #killLeader}, {@link #partition}, {@link #expireSession},
 * {@link #advance} ...).
 *
 * <p>The minizk binary is {@code -Dminizk.bin}, else {@code $MINIZK_BIN}, else {@code minizk}
 * on the PATH. {@code getServers()} (Curator's in-JVM ZooKeeper servers) has no counterpart.
 */
public class TestingCluster implements Closeable {
    private final int members;
    private final boolean manualClock;
    private final int tickMs;
    private Process process;
    private String control;
    private String connectString;
    private final List<InstanceSpec> instances = new ArrayList<>();
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();

    public TestingCluster(int instanceQty) {
        this(instanceQty, false, 2000);
    }

    /** {@code manualClock}: time moves only through {@link #advance}. */
    public TestingCluster(int instanceQty, boolean manualClock, int tickMs) {
        this.members = instanceQty;
        this.manualClock = manualClock;
        this.tickMs = tickMs;
    }

    private static String binary() {
        String property = System.getProperty("minizk.bin");
        if (property != null) return property;
        String environment = System.getenv("MINIZK_BIN");
        if (environment != null) return environment;
        return "minizk";
    }

    /** Starts the ensemble; returns once it serves. */
    public void start() throws Exception {
        if (process != null) {
            post("/start", null);
            return;
        }
        List<String> command = new ArrayList<>(List.of(binary(), "ensemble", "--nodes", Integer.toString(members),
            "--base-port", "0", "--control", "127.0.0.1:0", "--json", "--in-memory", "--log-level", "warning",
            "--tick-ms", Integer.toString(tickMs), "--clock", manualClock ? "manual" : "wall"));
        ProcessBuilder builder = new ProcessBuilder(command);
        builder.redirectError(ProcessBuilder.Redirect.INHERIT);
        process = builder.start();
        BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        String line;
        while ((line = out.readLine()) != null && !line.startsWith("{")) {
            // text before the JSON line, if any
        }
        if (line == null) {
            process.destroyForcibly();
            throw new IOException("minizk exited before serving");
        }
        control = string(line, "control");
        connectString = string(line, "connectString");
        Matcher member = Pattern.compile("\\{\"address\":\"[^\"]*\",\"host\":\"([^\"]*)\",\"id\":(\\d+),\"port\":(\\d+)\\}|"
            + "\\{\"host\":\"([^\"]*)\",\"id\":(\\d+),\"port\":(\\d+)\\}").matcher(line);
        File unused = new File(System.getProperty("java.io.tmpdir"));
        while (member.find()) {
            String host = member.group(1) != null ? member.group(1) : member.group(4);
            int id = Integer.parseInt(member.group(2) != null ? member.group(2) : member.group(5));
            int port = Integer.parseInt(member.group(3) != null ? member.group(3) : member.group(6));
            instances.add(new InstanceSpec(unused, port, -1, -1, false, id, tickMs, -1, null, host));
        }
        // Drain what the process still prints so that it never blocks on a full pipe.
        Thread drain = new Thread(() -> {
            try {
                while (out.readLine() != null) { }
            } catch (IOException ignored) { }
        });
        drain.setDaemon(true);
        drain.start();
    }

    private static String string(String json, String key) {
        Matcher m = Pattern.compile("\"" + key + "\":\"([^\"]*)\"").matcher(json);
        if (!m.find()) throw new IllegalStateException("no " + key + " in " + json);
        return m.group(1);
    }

    private static long number(String json, String key) {
        Matcher m = Pattern.compile("\"" + key + "\":(-?\\d+)").matcher(json);
        if (!m.find()) throw new IllegalStateException("no " + key + " in " + json);
        return Long.parseLong(m.group(1));
    }

    private String call(String method, String path, String body) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(control + path)).timeout(Duration.ofSeconds(60));
        request.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
        request.header("Content-Type", "application/json");
        HttpResponse<String> response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() / 100 != 2) {
            throw new IllegalStateException(method + " " + path + ": " + response.statusCode() + " " + response.body());
        }
        return response.body();
    }

    private String post(String path, String body) throws Exception {
        return call("POST", path, body);
    }

    private String get(String path) throws Exception {
        return call("GET", path, null);
    }

    public Collection<InstanceSpec> getInstances() {
        return new ArrayList<>(instances);
    }

    public String getConnectString() {
        return connectString;
    }

    /** The control API's address, e.g. {@code http://127.0.0.1:40123}. */
    public String getControlAddress() {
        return control;
    }

    /** Stops every member (their data is kept); {@link #start()} brings them back. */
    public void stop() throws IOException {
        try {
            post("/stop", null);
        } catch (IOException e) {
            throw e;
        } catch (Exception e) {
            throw new IOException(e);
        }
    }

    /** Ends the process; nothing outlives this call. */
    @Override
    public void close() throws IOException {
        Process p = process;
        process = null;
        if (p == null) return;
        p.destroy();
        try {
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor();
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    public boolean killServer(InstanceSpec instance) throws Exception {
        post("/members/" + instance.getServerId() + "/kill", null);
        return true;
    }

    public boolean restartServer(InstanceSpec instance) throws Exception {
        post("/members/" + instance.getServerId() + "/restart", null);
        post("/await-ready", null);
        return true;
    }

    /** The member where {@code client}'s session has its connection, or null. */
    public InstanceSpec findConnectionInstance(ZooKeeper client) throws Exception {
        String body = get("/sessions/" + client.getSessionId() + "/member");
        if (!body.contains("\"id\"")) return null;
        long id = number(body, "id");
        for (InstanceSpec spec : instances) {
            if (spec.getServerId() == id) return spec;
        }
        return null;
    }

    // -- MiniZK's extra faults -----------------------------------------------------------------

    /** Kills the leader; returns it. */
    public InstanceSpec killLeader() throws Exception {
        long id = number(post("/kill-leader", null), "id");
        return instances.stream().filter(s -> s.getServerId() == id).findFirst().orElseThrow();
    }

    /** The leader now, or null. */
    public InstanceSpec getLeader() throws Exception {
        String body = get("/leader");
        if (!body.contains("\"id\"")) return null;
        long id = number(body, "id");
        return instances.stream().filter(s -> s.getServerId() == id).findFirst().orElse(null);
    }

    public void awaitReady() throws Exception {
        post("/await-ready", null);
    }

    /** {@code partition(new int[]{1}, new int[]{2, 3})}. */
    public void partition(int[]... groups) throws Exception {
        StringBuilder json = new StringBuilder("{\"groups\":[");
        for (int g = 0; g < groups.length; g++) {
            if (g > 0) json.append(',');
            json.append('[');
            for (int i = 0; i < groups[g].length; i++) {
                if (i > 0) json.append(',');
                json.append(groups[g][i]);
            }
            json.append(']');
        }
        post("/partition", json.append("]}").toString());
    }

    public void isolate(InstanceSpec instance) throws Exception {
        post("/members/" + instance.getServerId() + "/isolate", null);
    }

    public void heal() throws Exception {
        post("/heal", null);
    }

    public void pause(InstanceSpec instance) throws Exception {
        post("/members/" + instance.getServerId() + "/pause", null);
    }

    public void resume(InstanceSpec instance) throws Exception {
        post("/members/" + instance.getServerId() + "/resume", null);
    }

    /** Closes a member's client connections; sessions live on. */
    public int dropConnections(InstanceSpec instance) throws Exception {
        return (int) number(post("/members/" + instance.getServerId() + "/drop-connections", null), "closed");
    }

    /** Expires a session through the log, as the leader does when its time-out passes. */
    public void expireSession(long sessionId) throws Exception {
        post("/sessions/" + sessionId + "/expire", null);
    }

    public void closeSession(long sessionId) throws Exception {
        post("/sessions/" + sessionId + "/close", null);
    }

    /** Advances the manual clock; returns its new time in ms. */
    public long advance(long ms) throws Exception {
        return number(post("/clock/advance", "{\"ms\":" + ms + "}"), "nowMs");
    }

    /** Empties the tree and ends every session (between tests). */
    public void reset() throws Exception {
        post("/reset", null);
    }
}
