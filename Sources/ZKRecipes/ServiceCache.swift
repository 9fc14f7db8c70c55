import NIOConcurrencyHelpers
import ZKClient
import ZKRecipesCore

/// curator-x-discovery's `ServiceCache`: the instances of one service (`<basePath>/<name>/<id>`,
/// JSON as `ServiceInstance` reads it), kept current by a `TreeCache` on the service node (one
/// persistent recursive watch) instead of Curator's `PathChildrenCache`. Instances whose data does
/// not parse are left out.
///
///     let cache = try await discovery.cache(of: "worker")
///     cache.instances                              // sorted by id
///     for await instances in cache.changes { ... } // current first, then each change
public final class ServiceCache: Sendable {
    public let name: String
    public let servicePath: String
    let tree: TreeCache

    init(name: String, servicePath: String, tree: TreeCache) {
        self.name = name
        self.servicePath = servicePath
        self.tree = tree
    }

    /// Starts a cache of `name`'s instances (the service node need not exist yet).
    public static func start(discovery: ServiceDiscovery, name: String) async throws -> ServiceCache {
        let servicePath = discovery.pathFor(name: name)
        let tree = try await TreeCache.start(client: discovery.client, path: servicePath, recursive: true)
        return ServiceCache(name: name, servicePath: servicePath, tree: tree)
    }

    /// The instances now, sorted by id.
    public var instances: [ServiceInstance] { Self.instances(in: tree.current, servicePath: servicePath) }

    /// The instances each time they change (by value), starting with the current ones.
    public var changes: AsyncStream<[ServiceInstance]> {
        let snapshots = tree.snapshots, servicePath = self.servicePath
        return AsyncStream { continuation in
            let task = Task {
                var last: [ServiceInstance]?
                for await snapshot in snapshots {
                    let instances = Self.instances(in: snapshot, servicePath: servicePath)
                    if instances != last { continuation.yield(instances) }
                    last = instances
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func close() async { await tree.close() }

    static func instances(in snapshot: [String: [UInt8]], servicePath: String) -> [ServiceInstance] {
        snapshot.compactMap { path, data -> ServiceInstance? in
            guard path != servicePath, CuratorNames.parent(path) == servicePath else { return nil }
            return try? ServiceInstance.deserialize(data)
        }.sorted { $0.id < $1.id }
    }
}

extension ServiceDiscovery {
    /// A cache of `name`'s instances (`ServiceCache`), started.
    public func cache(of name: String) async throws -> ServiceCache {
        try await ServiceCache.start(discovery: self, name: name)
    }
}

/// How a `ServiceProvider` picks one instance (curator-x-discovery's `ProviderStrategy`).
public protocol ProviderStrategy: Sendable {
    /// One of `instances` (never empty), or nil.
    mutating func pick(from instances: [ServiceInstance]) -> ServiceInstance?
}

/// `RandomStrategy`: any instance, uniformly, from the generator given (seed it for
/// reproducible picks).
public struct RandomStrategy<Generator: RandomNumberGenerator & Sendable>: ProviderStrategy {
    var generator: Generator
    public init(generator: Generator) { self.generator = generator }
    public mutating func pick(from instances: [ServiceInstance]) -> ServiceInstance? {
        instances.randomElement(using: &generator)
    }
}

extension RandomStrategy where Generator == SystemRandomNumberGenerator {
    public init() { self.init(generator: SystemRandomNumberGenerator()) }
}

/// `RoundRobinStrategy`: a counter taken modulo the number of instances (Curator's
/// `index.getAndIncrement() % size`, over instances sorted by id).
public struct RoundRobinStrategy: ProviderStrategy {
    var next: Int = 0
    public init() {}
    public mutating func pick(from instances: [ServiceInstance]) -> ServiceInstance? {
        defer { next &+= 1 }
        return instances[abs(next % instances.count)]
    }
}

/// `StickyStrategy`: the same instance while it is registered; another strategy picks a new one
/// when it goes (or after `noteError`).
public struct StickyStrategy<Base: ProviderStrategy>: ProviderStrategy {
    var base: Base
    var current: ServiceInstance?
    public init(_ base: Base) { self.base = base }
    public mutating func pick(from instances: [ServiceInstance]) -> ServiceInstance? {
        if let current, let still = instances.first(where: { $0.id == current.id }) {
            self.current = still
            return still
        }
        current = base.pick(from: instances)
        return current
    }
    mutating func forget(_ instance: ServiceInstance) {
        if current?.id == instance.id { current = nil }
    }
}

/// curator-x-discovery's `ServiceProvider`: one instance of a service at a time from a
/// `ServiceCache`, chosen by a `ProviderStrategy`; instances the program reported failing
/// (`noteError`) are skipped until they are registered again (a simpler `DownInstancePolicy`:
/// Curator's skips them for a time after a number of errors).
public final class ServiceProvider: Sendable {
    public let cache: ServiceCache
    struct Inner {
        var strategy: any ProviderStrategy
        /// Ids reported down, with the registration time they were reported against.
        var down: [String: Int64] = [:]
    }
    let inner: NIOLockedValueBox<Inner>

    public init(cache: ServiceCache, strategy: some ProviderStrategy = RoundRobinStrategy()) {
        self.cache = cache
        inner = NIOLockedValueBox(Inner(strategy: strategy))
    }

    public static func start(
        discovery: ServiceDiscovery, name: String, strategy: some ProviderStrategy = RoundRobinStrategy()
    ) async throws -> ServiceProvider {
        ServiceProvider(cache: try await discovery.cache(of: name), strategy: strategy)
    }

    /// An instance, nil when none is registered (and up).
    public func instance() -> ServiceInstance? {
        let all = cache.instances
        return inner.withLockedValue { inner in
            // A re-registration (new registration time) clears the down mark.
            inner.down = inner.down.filter { id, time in all.contains { $0.id == id && $0.registrationTimeUTC == time } }
            let up = all.filter { inner.down[$0.id] == nil }
            guard !up.isEmpty else { return nil }
            return inner.strategy.pick(from: up)
        }
    }

    /// Every instance registered, up or not (Curator's `getAllInstances`).
    public func allInstances() -> [ServiceInstance] { cache.instances }

    /// The program could not use `instance`: skip it until it registers again.
    public func noteError(_ instance: ServiceInstance) {
        inner.withLockedValue { inner in
            inner.down[instance.id] = instance.registrationTimeUTC
            if var sticky = inner.strategy as? any StickyForgetting {
                sticky.forgetInstance(instance)
                inner.strategy = sticky
            }
        }
    }

    public func close() async { await cache.close() }
}

/// Lets `noteError` move a sticky strategy off the failing instance.
protocol StickyForgetting: ProviderStrategy {
    mutating func forgetInstance(_ instance: ServiceInstance)
}

extension StickyStrategy: StickyForgetting {
    mutating func forgetInstance(_ instance: ServiceInstance) { forget(instance) }
}
