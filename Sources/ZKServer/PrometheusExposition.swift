import ZKCore

/// Renders one server's metrics in the Prometheus text format (version 0.0.4), as ZooKeeper's
/// Prometheus provider serves them on `metricsProvider.httpPort` at `/metrics`.
///
/// Gauges are set from a `FourLetterWordSnapshot` at the moment of the scrape, the counters and
/// MiniZK's histograms come from the registry as they were recorded, and ZooKeeper's summaries
/// (which swift-prometheus does not offer) are written here in the same format.
public enum PrometheusExposition {
    /// One gauge: its name, value and help.
    public struct GaugeValue: Sendable {
        public var name: String
        public var value: Double
        public var help: String
    }

    /// ZooKeeper's gauges (the numeric `mntr` values) and MiniZK's own, from a snapshot.
    public static func gauges(_ o: OperationsSnapshot) -> [GaugeValue] {
        let s = o.fourLetterWords
        let recovery = o.recovery
        func g(_ name: String, _ value: Double, _ help: String) -> GaugeValue {
            GaugeValue(name: name, value: value, help: help)
        }
        let latency = s.server.latency
        let status = s.status
        var gauges: [GaugeValue] = [
            g("avg_latency", latency.averageMs, "Average request latency (ms) since the last stat reset"),
            g("max_latency", Double(latency.maxMs), "Largest request latency (ms) since the last stat reset"),
            g("min_latency", Double(latency.minMs), "Smallest request latency (ms) since the last stat reset"),
            g("packets_received", Double(s.server.packetsReceived), "Client frames received"),
            g("packets_sent", Double(s.server.packetsSent), "Client frames sent"),
            g("num_alive_connections", Double(s.connections.count), "Open client connections"),
            g("outstanding_requests", Double(status.outstandingRequests), "Requests received and not yet applied"),
            g("uptime", Double(max(0, s.nowMs - s.startedAtMs)), "Milliseconds since the server started"),
            g("znode_count", Double(status.nodeCount), "Znodes in the tree"),
            g("watch_count", Double(status.watchCount), "Watches set"),
            g("ephemerals_count", Double(status.ephemeralsCount), "Ephemeral znodes"),
            g("approximate_data_size", Double(status.approximateDataSize), "Bytes of znode paths and data"),
            g("global_sessions", Double(status.sessions.count), "Sessions"),
            g("local_sessions", 0, "Local sessions (MiniZK has none)"),
            g("open_file_descriptor_count", Double(s.openFileDescriptorCount), "Open file descriptors of the process"),
            g("max_file_descriptor_count", Double(s.maxFileDescriptorCount), "File descriptor limit of the process"),
            g("connection_drop_probability", 0, "Probability of dropping a new connection (MiniZK never drops)"),
            g("last_client_response_size", Double(o.responseSizes.last), "Bytes of the last frame sent to a client"),
            g("min_client_response_size", Double(o.responseSizes.min), "Bytes of the smallest frame sent to a client"),
            g("max_client_response_size", Double(o.responseSizes.max), "Bytes of the largest frame sent to a client"),
            g("minizk_current_epoch", Double(status.currentEpoch), "The replica's current epoch"),
            g("minizk_last_zxid", Double(status.lastZxid), "The zxid of the last transaction applied"),
            g("minizk_serving", status.serving ? 1 : 0, "1 while the replica serves clients"),
            g("minizk_is_leader", status.mode == "leader" || status.mode == "standalone" ? 1 : 0, "1 while the replica leads"),
            g("minizk_last_snapshot_zxid", Double(s.storage.lastSnapshotZxid), "The zxid of the newest complete snapshot"),
            g("minizk_data_dir_bytes", Double(s.dataDirectoryBytes), "Bytes of the files in the data directory"),
            g("minizk_group_commit_max_transactions", Double(s.storage.batchTransactionsMax), "The most transactions one group-commit batch carried"),
            g("minizk_recovery_seconds", recovery.totalSeconds, "Recovery of the store at start"),
            g("minizk_recovery_snapshot_read_seconds", recovery.snapshotReadSeconds, "Reading and checking the snapshot at start"),
            g("minizk_recovery_snapshot_decode_seconds", recovery.snapshotDecodeSeconds, "Decoding the snapshot at start"),
            g("minizk_recovery_tree_restore_seconds", recovery.treeRestoreSeconds, "Building the tree from the snapshot at start"),
            g("minizk_recovery_log_seconds", recovery.logSeconds, "Reading the log after the snapshot at start"),
            g("minizk_recovery_snapshot_nodes", Double(recovery.snapshotNodes), "Znodes in the snapshot recovered from"),
            g("minizk_recovery_log_transactions", Double(recovery.logTransactions), "Logged transactions replayed at start"),
        ]
        if status.mode == "leader" {
            gauges += [
                g("learners", Double(status.followers), "Followers and observers connected to this leader"),
                g("synced_followers", Double(status.syncedFollowers), "Followers in sync with this leader"),
                g("pending_syncs", Double(status.pendingSyncs), "Syncs waiting for a commit"),
            ]
        }
        return gauges
    }

    /// The whole exposition: the registry (counters, gauges, MiniZK's histograms) then the summaries.
    public static func render(_ snapshot: OperationsSnapshot, registry: ServerMetricsRegistry) -> String {
        for gauge in gauges(snapshot) {
            registry.set(gauge.name, gauge.value, help: gauge.help)
        }
        var text = registry.registry.emitToString()
        for (name, quantiles, summary) in snapshot.summaries.all {
            text += summaryText(name: name, quantiles: quantiles, summary)
        }
        return text
    }

    /// One summary in the text format, with ZooKeeper's help (the name itself).
    static func summaryText(name: String, quantiles: [Double], _ summary: MetricSummary) -> String {
        var out = "# HELP \(name) \(name)\n# TYPE \(name) summary\n"
        for q in quantiles {
            out += "\(name){quantile=\"\(q)\"} \(number(summary.quantile(q)))\n"
        }
        out += "\(name)_count \(summary.count)\n"
        out += "\(name)_sum \(summary.sum)\n"
        return out
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value == value.rounded(), abs(value) < 1e15 { return "\(Int64(value)).0" }
        return "\(value)"
    }
}
