/// A priority queue of events ordered by (time, sequence): events at the same virtual time run in
/// the order they were scheduled, which is what makes a run reproducible. A binary heap of small
/// keys; the payloads stay put in slots, so that sifting moves three words, not an event.
struct EventQueue<Payload> {
    struct Entry {
        var atMs: Int64
        var sequence: UInt64
        var payload: Payload
    }

    private struct Key {
        var atMs: Int64
        var sequence: UInt64
        var slot: Int
    }

    private var heap: [Key] = []
    private var slots: [Payload?] = []
    private var freeSlots: [Int] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var firstAtMs: Int64? { heap.first?.atMs }

    mutating func push(atMs: Int64, _ payload: Payload) {
        nextSequence += 1
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = payload
        } else {
            slot = slots.count
            slots.append(payload)
        }
        heap.append(Key(atMs: atMs, sequence: nextSequence, slot: slot))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && Self.before(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count && Self.before(heap[right], heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        let payload = slots[top.slot]!
        slots[top.slot] = nil
        freeSlots.append(top.slot)
        return Entry(atMs: top.atMs, sequence: top.sequence, payload: payload)
    }

    private static func before(_ a: Key, _ b: Key) -> Bool {
        a.atMs != b.atMs ? a.atMs < b.atMs : a.sequence < b.sequence
    }
}
