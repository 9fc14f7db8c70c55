// The Swift side of the recipe interoperability check with Apache Curator 5.4
// (scripts/recipes-interop.sh); the same modes as compat/curator-interop/CuratorInterop.java:
//
// mutex and latch contenders append "ready ID" to MARKS and wait for the file MARKS.go, so that all start together.
//   mutex    CONNECT PATH ROUNDS MARKS ID   InterProcessMutex; appends "enter ID"/"exit ID" to MARKS while holding
//   rwlock   CONNECT PATH ROUNDS MARKS ID   the read lock when ID contains "-read-", else the write lock
//   semaphore CONNECT PATH MAX ROUNDS MARKS ID  InterProcessSemaphoreV2 with MAX leases
//   double-barrier CONNECT PATH MEMBERS MARKS ID  DistributedDoubleBarrier: marks arrive/entered/leaving/left
//   latch    CONNECT PATH MARKS ID          LeaderLatch; appends enter/exit while leader, then leaves
//   counter  CONNECT PATH N MARKS ID        DistributedAtomicLong.increment() N times
//   get      CONNECT PATH                   prints the counter
//   register CONNECT BASE NAME ID SECONDS   registers a service instance, kept SECONDS
//   discover CONNECT BASE NAME ID SECONDS   waits up to SECONDS for instance ID; prints it
//   queue-put  CONNECT PATH PREFIX N        N messages PREFIX-i
//   queue-take CONNECT PATH SECONDS         consumes messages for SECONDS (20 ms each); prints "took <message>" each
//   delay-put  CONNECT PATH PREFIX N DELAYMS  DistributedDelayQueue: N messages PREFIX-i@EPOCH, due DELAYMS from now
//   delay-take CONNECT PATH SECONDS         DistributedDelayQueue consumer for SECONDS; prints "took <message> at <epoch ms>"
//   persistent-node CONNECT PATH DATA1 DATA2 SECONDS  PersistentNode (ephemeral) at PATH with DATA1, DATA2 after 1 s, kept SECONDS
import Foundation
import ZKClient
import ZKRecipes

func mark(_ file: String, _ line: String) throws {
    // One write to a descriptor opened with O_APPEND: the kernel appends it whole, so lines of
    // processes writing at once never overwrite each other (a seek to the end, then a write,
    // could: two processes seek to the same end).
    let descriptor = open(file, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(descriptor) }
    let bytes = Array((line + "\n").utf8)
    let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    guard written == bytes.count else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
}

/// Appends "ready ID" to MARKS, then waits for MARKS.go: every contender starts together.
func ready(_ marks: String, _ id: String) async throws {
    try mark(marks, "ready \(id)")
    while !FileManager.default.fileExists(atPath: marks + ".go") { try await Task.sleep(for: .milliseconds(5)) }
}

/// Unbuffered, so that the runner sees each line at once.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(1)
}

let args = CommandLine.arguments
guard args.count >= 3 else { fail("usage: zkrecipes-interop MODE CONNECT ...") }
let mode = args[1]
var configuration = ZooKeeperClient.Configuration(connectString: args[2], sessionTimeout: .seconds(10))
configuration.initialConnectTimeout = .seconds(20)
let client = try await ZooKeeperClient.connect(configuration: configuration)

switch mode {
case "mutex":
    let mutex = InterProcessMutex(client: client, path: args[3])
    try await ready(args[5], args[6])
    for _ in 0..<Int(args[4])! {
        try await mutex.acquire()
        try mark(args[5], "enter \(args[6])")
        try await Task.sleep(for: .milliseconds(20))
        try mark(args[5], "exit \(args[6])")
        try await mutex.release()
    }
    await mutex.close()
case "rwlock":
    let rw = InterProcessReadWriteLock(client: client, path: args[3])
    let lock = args[6].contains("-read-") ? rw.readLock : rw.writeLock
    try await ready(args[5], args[6])
    for _ in 0..<Int(args[4])! {
        try await lock.acquire()
        try mark(args[5], "enter \(args[6])")
        try await Task.sleep(for: .milliseconds(15))
        try mark(args[5], "exit \(args[6])")
        try await lock.release()
    }
case "semaphore":
    let semaphore = InterProcessSemaphoreV2(client: client, path: args[3], maxLeases: Int(args[4])!)
    try await ready(args[6], args[7])
    for _ in 0..<Int(args[5])! {
        let lease = try await semaphore.acquire()
        try mark(args[6], "enter \(args[7])")
        try await Task.sleep(for: .milliseconds(15))
        try mark(args[6], "exit \(args[7])")
        try await semaphore.release(lease)
    }
case "double-barrier":
    let barrier = DistributedDoubleBarrier(client: client, path: args[3], memberCount: Int(args[4])!)
    try await ready(args[5], args[6])
    try mark(args[5], "arrive \(args[6])")
    try await barrier.enter()
    try mark(args[5], "entered \(args[6])")
    try await Task.sleep(for: .milliseconds(50))
    try mark(args[5], "leaving \(args[6])")
    try await barrier.leave()
    try mark(args[5], "left \(args[6])")
case "latch":
    let latch = LeaderLatch(client: client, path: args[3], id: args[5])
    try await ready(args[4], args[5])
    try await latch.start()
    try await latch.awaitLeadership()
    try mark(args[4], "enter \(args[5])")
    try await Task.sleep(for: .milliseconds(300))
    try mark(args[4], "exit \(args[5])")
    await latch.close()
case "counter":
    let counter = DistributedAtomicLong(client: client, path: args[3])
    try await ready(args[5], args[6])
    for _ in 0..<Int(args[4])! { try await counter.increment() }
case "get":
    say(String(try await DistributedAtomicLong(client: client, path: args[3]).get()))
case "register":
    let discovery = ServiceDiscovery(client: client, basePath: args[3])
    try await discovery.register(ServiceInstance(name: args[4], id: args[5], address: "127.0.0.3", port: 7070))
    say("registered \(args[5])")
    try await Task.sleep(for: .seconds(Int(args[6])!))
case "discover":
    let discovery = ServiceDiscovery(client: client, basePath: args[3])
    let deadline = Date().addingTimeInterval(Double(args[6])!)
    while true {
        if let found = try await discovery.instance(name: args[4], id: args[5]) {
            say("found \(found.name) \(found.id) \(found.address ?? "-"):\(found.port.map(String.init) ?? "-") type=\(found.serviceType.rawValue)")
            say("instances \(try await discovery.instances(of: args[4]).count)")
            break
        }
        if Date() > deadline { say("not found"); exit(1) }
        try await Task.sleep(for: .milliseconds(100))
    }
case "queue-put":
    let queue = DistributedQueue(client: client, path: args[3])
    for i in 0..<Int(args[5])! { try await queue.put(Array("\(args[4])-\(i)".utf8)) }
case "queue-take":
    let queue = DistributedQueue(client: client, path: args[3])
    let deadline = Date().addingTimeInterval(Double(args[4])!)
    while Date() < deadline {
        if let messages = try await queue.poll() {
            for message in messages {
                say("took \(String(decoding: message, as: UTF8.self))")
                try await Task.sleep(for: .milliseconds(20))
            }
                } else {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
case "delay-put":
    let queue = DistributedDelayQueue(client: client, path: args[3])
    for i in 0..<Int(args[5])! {
        let due = DistributedDelayQueue.systemNowMs() + Int64(args[6])!
        try await queue.put(Array("\(args[4])-\(i)@\(due)".utf8), untilEpochMs: due)
    }
case "delay-take":
    let queue = DistributedDelayQueue(client: client, path: args[3])
    let deadline = Date().addingTimeInterval(Double(args[4])!)
    while Date() < deadline {
        if let messages = try await queue.poll() {
            for message in messages { say("took \(String(decoding: message, as: UTF8.self)) at \(DistributedDelayQueue.systemNowMs())") }
        } else {
            try await Task.sleep(for: .milliseconds(20))
        }
    }
case "persistent-node":
    let node = PersistentNode(client: client, path: args[3], mode: .ephemeral, data: Array(args[4].utf8))
    node.start()
    guard await node.waitForInitialCreate(timeout: .seconds(20)) else { fail("not created") }
    say("created \(node.actualPath ?? "-")")
    try await Task.sleep(for: .seconds(1))
    try await node.setData(Array(args[5].utf8))
    try await Task.sleep(for: .seconds(Int(args[6])!))
    await node.close()
default:
    fail("unknown mode \(mode)")
}
await client.close()
