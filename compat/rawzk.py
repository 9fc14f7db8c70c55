"""A deliberately small ZooKeeper client speaking the wire protocol directly.

The differential tests use it for what kazoo cannot send: invalid paths (kazoo
normalises ``/a//b`` and rejects ``/.`` itself), containers and TTL nodes,
addWatch, check/removeWatches, whoAmI, getEphemerals, getAllChildrenNumber,
multiRead and unknown opcodes.  It is synchronous: one request at a time, and
notifications (xid -1) that arrive before a reply are queued in ``events``.
Because a server writes a connection's notifications before any later reply on
that connection, "send a ping and collect what came before the reply" is an
exact barrier for watch events -- no sleeping.

Encoding ("jute"): big-endian; int 4 bytes, long 8, boolean 1; buffer and
ustring are an int length (-1 = null) and the bytes; a vector is an int count
(-1 = null) and the elements; records are their fields in order.  Every frame
is an int length and that many bytes.
"""

import socket
import struct

# Opcodes.
CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_ACL, SET_ACL = 1, 2, 3, 4, 5, 6, 7
GET_CHILDREN, SYNC, PING, GET_CHILDREN2, CHECK, MULTI = 8, 9, 11, 12, 13, 14
CREATE2, RECONFIG, CHECK_WATCHES, REMOVE_WATCHES = 15, 16, 17, 18
CREATE_CONTAINER, DELETE_CONTAINER, CREATE_TTL, MULTI_READ = 19, 20, 21, 22
AUTH, SET_WATCHES, SASL, GET_EPHEMERALS, GET_ALL_CHILDREN_NUMBER = 100, 101, 102, 103, 104
SET_WATCHES2, ADD_WATCH, WHO_AM_I, CLOSE_SESSION = 105, 106, 107, -11

ERROR_NAMES = {
    0: "OK", -1: "SYSTEMERROR", -2: "RUNTIMEINCONSISTENCY", -3: "DATAINCONSISTENCY",
    -4: "CONNECTIONLOSS", -5: "MARSHALLINGERROR", -6: "UNIMPLEMENTED",
    -7: "OPERATIONTIMEOUT", -8: "BADARGUMENTS", -12: "UNKNOWNSESSION",
    -13: "NEWCONFIGNOQUORUM", -14: "RECONFIGINPROGRESS", -100: "APIERROR",
    -101: "NONODE", -102: "NOAUTH", -103: "BADVERSION",
    -108: "NOCHILDRENFOREPHEMERALS", -110: "NODEEXISTS", -111: "NOTEMPTY",
    -112: "SESSIONEXPIRED", -113: "INVALIDCALLBACK", -114: "INVALIDACL",
    -115: "AUTHFAILED", -118: "SESSIONMOVED", -119: "NOTREADONLY",
    -120: "EPHEMERALONLOCALSESSION", -121: "NOWATCHER", -122: "REQUESTTIMEOUT",
    -123: "RECONFIGDISABLED", -124: "SESSIONCLOSEDREQUIRESASLAUTH",
    -125: "QUOTAEXCEEDED", -127: "THROTTLEDOP",
}

OPEN_ACL = [(31, "world", "anyone")]

STAT_FORMAT = ">qqqqiiiqiiq"
STAT_FIELDS = (
    "czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
    "ephemeralOwner", "dataLength", "numChildren", "pzxid",
)
STAT_BYTES = struct.calcsize(STAT_FORMAT)


def _sorted(values):
    # Servers may list children in any order; compare them sorted.
    return None if values is None else sorted(values)


def error_name(code):
    return "%s(%d)" % (ERROR_NAMES.get(code, "UNKNOWN"), code)


class Closed(Exception):
    """The server closed the connection."""


# -- encoding -------------------------------------------------------------------
class Writer:
    def __init__(self):
        self.parts = []

    def int(self, value):
        self.parts.append(struct.pack(">i", value))
        return self

    def long(self, value):
        self.parts.append(struct.pack(">q", value))
        return self

    def bool(self, value):
        self.parts.append(b"\x01" if value else b"\x00")
        return self

    def buffer(self, value):
        if value is None:
            return self.int(-1)
        self.int(len(value))
        self.parts.append(bytes(value))
        return self

    def string(self, value):
        if value is None:
            return self.int(-1)
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogatepass")
        return self.buffer(value)

    def acl_list(self, acls):
        if acls is None:
            return self.int(-1)
        self.int(len(acls))
        for perms, scheme, ident in acls:
            self.int(perms).string(scheme).string(ident)
        return self

    def strings(self, values):
        if values is None:
            return self.int(-1)
        self.int(len(values))
        for value in values:
            self.string(value)
        return self

    def raw(self, data):
        self.parts.append(data)
        return self

    def bytes(self):
        return b"".join(self.parts)


class Reader:
    def __init__(self, data):
        self.data = data
        self.offset = 0

    def _take(self, count):
        if self.offset + count > len(self.data):
            raise ValueError("short record: need %d bytes at %d of %d"
                             % (count, self.offset, len(self.data)))
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def int(self):
        return struct.unpack(">i", self._take(4))[0]

    def long(self):
        return struct.unpack(">q", self._take(8))[0]

    def bool(self):
        return self._take(1) != b"\x00"

    def buffer(self):
        length = self.int()
        if length < 0:
            return None
        return self._take(length)

    def string(self):
        value = self.buffer()
        return None if value is None else value.decode("utf-8", "replace")

    def strings(self):
        count = self.int()
        if count < 0:
            return None
        return [self.string() for _ in range(count)]

    def stat(self):
        values = struct.unpack(STAT_FORMAT, self._take(STAT_BYTES))
        return dict(zip(STAT_FIELDS, values))

    def acl_list(self):
        count = self.int()
        if count < 0:
            return None
        return [(self.int(), self.string(), self.string()) for _ in range(count)]

    def remaining(self):
        return len(self.data) - self.offset


# -- request bodies ---------------------------------------------------------------
def create_body(path, data=b"", acl=OPEN_ACL, flags=0, ttl=None):
    writer = Writer().string(path).buffer(data).acl_list(acl).int(flags)
    if ttl is not None:
        writer.long(ttl)
    return writer.bytes()


def path_body(path, watch=None):
    writer = Writer().string(path)
    if watch is not None:
        writer.bool(watch)
    return writer.bytes()


def path_version_body(path, version):
    return Writer().string(path).int(version).bytes()


def set_data_body(path, data, version=-1):
    return Writer().string(path).buffer(data).int(version).bytes()


def multi_body(ops):
    """ops: (opcode, body bytes) pairs; returns the MULTI/MULTI_READ body."""
    writer = Writer()
    for opcode, body in ops:
        writer.int(opcode).bool(False).int(-1).raw(body)
    return writer.int(-1).bool(True).int(-1).bytes()


# -- the client ---------------------------------------------------------------------
class RawClient:
    def __init__(self, host, port, timeout=10.0, session_timeout_ms=10000):
        self.host, self.port = host, port
        self.timeout = timeout
        self.session_timeout_ms = session_timeout_ms
        self.sock = None
        self.xid = 0
        self.events = []
        self.session_id = None
        self.negotiated_timeout_ms = None
        self.closed = False
        self.last_zxid = 0  # highest zxid seen in a reply header, as clients track it
        self.reply_zxid = 0
        self.seen_zxid = 0

    # framing
    def _recv_exact(self, count):
        chunks = []
        while count:
            chunk = self.sock.recv(count)
            if not chunk:
                self.closed = True
                raise Closed()
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def read_frame(self):
        try:
            length = struct.unpack(">i", self._recv_exact(4))[0]
            return self._recv_exact(length)
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            raise Closed()

    def send_frame(self, payload):
        try:
            self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            raise Closed()

    # session
    def connect(self, session_id=0, password=b"\x00" * 16, read_only=False, last_zxid=0):
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock.settimeout(self.timeout)
        request = (Writer().int(0).long(last_zxid).int(self.session_timeout_ms)
                   .long(session_id).buffer(password).bool(read_only).bytes())
        self.send_frame(request)
        reader = Reader(self.read_frame())
        reader.int()  # protocol version
        self.negotiated_timeout_ms = reader.int()
        self.session_id = reader.long()
        self.password = reader.buffer()
        return self

    def close(self):
        """closeSession, then drop the socket (tolerates a dead connection)."""
        if self.sock is None:
            return
        try:
            if not self.closed:
                self.request(CLOSE_SESSION, b"")
        except (Closed, OSError):
            pass
        self.drop()

    def drop(self):
        """Close the socket without closing the session."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self.closed = True

    def next_xid(self):
        self.xid += 1
        return self.xid

    def exchange(self, opcode, body, xid=None):
        """Send one request; return (reply xid, err, body reader) of the first frame that is
        not a notification, whatever its xid.  Queues notifications."""
        xid = self.next_xid() if xid is None else xid
        self.send_frame(Writer().int(xid).int(opcode).raw(body).bytes())
        while True:
            reader = Reader(self.read_frame())
            reply_xid = reader.int()
            zxid = reader.long()
            err = reader.int()
            if zxid > self.last_zxid:
                self.last_zxid = zxid
            if reply_xid == -1:
                event = Reader(reader.data[reader.offset:])
                self.events.append((event.int(), event.int(), event.string()))
                continue
            self.reply_zxid = zxid  # of the last reply (a ping's: what the server has applied)
            if reply_xid != -2 and zxid > self.seen_zxid:
                self.seen_zxid = zxid  # what a client library tracks: pings left out
            return reply_xid, err, reader

    def request(self, opcode, body, xid=None):
        """Send one request; return (err, body reader).  Queues notifications."""
        xid = self.next_xid() if xid is None else xid
        reply_xid, err, reader = self.exchange(opcode, body, xid)
        if reply_xid != xid:
            raise ValueError("reply xid %d, expected %d" % (reply_xid, xid))
        return err, reader

    def barrier(self):
        """Ping; every notification sent before the ping's reply is now queued."""
        err, _ = self.request(PING, b"", xid=-2)
        return err

    def take_events(self):
        self.barrier()
        events, self.events = self.events, []
        return events

    def still_open(self):
        """True if the server has not closed the connection (checked by a ping)."""
        if self.closed:
            return False
        try:
            self.barrier()
            return True
        except (Closed, OSError):
            self.closed = True
            return False

    # convenience wrappers: each returns a plain, comparable value
    def call(self, opcode, body, decode=None):
        err, reader = self.request(opcode, body)
        if err:
            return error_name(err)
        if decode is None:
            return "OK" if reader.remaining() == 0 else ("OK", reader.data[reader.offset:].hex())
        return decode(reader)

    def create(self, path, data=b"", acl=OPEN_ACL, flags=0, opcode=CREATE, ttl=None):
        if opcode in (CREATE2, CREATE_CONTAINER, CREATE_TTL):
            decode = lambda r: {"path": r.string(), "stat": r.stat()}
        else:
            decode = lambda r: {"path": r.string()}
        return self.call(opcode, create_body(path, data, acl, flags, ttl), decode)

    def delete(self, path, version=-1):
        return self.call(DELETE, path_version_body(path, version))

    def exists(self, path, watch=False):
        return self.call(EXISTS, path_body(path, watch), lambda r: r.stat())

    def get_data(self, path, watch=False):
        return self.call(GET_DATA, path_body(path, watch),
                         lambda r: {"data": r.buffer(), "stat": r.stat()})

    def set_data(self, path, data, version=-1):
        return self.call(SET_DATA, set_data_body(path, data, version), lambda r: r.stat())

    def get_children(self, path, watch=False):
        return self.call(GET_CHILDREN, path_body(path, watch),
                         lambda r: _sorted(r.strings()))

    def get_children2(self, path, watch=False):
        return self.call(GET_CHILDREN2, path_body(path, watch),
                         lambda r: {"children": _sorted(r.strings()), "stat": r.stat()})

    def get_acl(self, path):
        return self.call(GET_ACL, path_body(path),
                         lambda r: {"acl": r.acl_list(), "stat": r.stat()})

    def set_acl(self, path, acl, version=-1):
        body = Writer().string(path).acl_list(acl).int(version).bytes()
        return self.call(SET_ACL, body, lambda r: r.stat())

    def sync(self, path):
        return self.call(SYNC, path_body(path), lambda r: r.string())

    def auth(self, scheme, credential):
        body = Writer().int(0).string(scheme).buffer(credential).bytes()
        err, _ = self.request(AUTH, body, xid=-4)
        return error_name(err) if err else "OK"

    def add_watch(self, path, mode):
        return self.call(ADD_WATCH, Writer().string(path).int(mode).bytes(),
                         lambda r: {"err": r.int()} if r.remaining() else "OK")

    def check_watches(self, path, watcher_type):
        return self.call(CHECK_WATCHES, Writer().string(path).int(watcher_type).bytes())

    def remove_watches(self, path, watcher_type):
        return self.call(REMOVE_WATCHES, Writer().string(path).int(watcher_type).bytes())

    def set_watches(self, relative_zxid, data=(), exist=(), child=(), persistent=None,
                    recursive=None):
        """SetWatches (opcode 101), or SetWatches2 (105) when persistent or recursive is given,
        with xid -8 as clients send it; returns (reply xid, error name)."""
        writer = (Writer().long(relative_zxid).strings(list(data)).strings(list(exist))
                  .strings(list(child)))
        opcode = SET_WATCHES
        if persistent is not None or recursive is not None:
            opcode = SET_WATCHES2
            writer.strings(list(persistent or ())).strings(list(recursive or ()))
        reply_xid, err, _ = self.exchange(opcode, writer.bytes(), xid=-8)
        return reply_xid, error_name(err) if err else "OK"

    def who_am_i(self):
        def decode(reader):
            count = reader.int()
            # The identities form a set: servers list them in any order.
            return sorted((reader.string(), reader.string()) for _ in range(max(count, 0)))
        return self.call(WHO_AM_I, b"", decode)

    def get_ephemerals(self, prefix):
        return self.call(GET_EPHEMERALS, path_body(prefix), lambda r: _sorted(r.strings()))

    def get_all_children_number(self, path):
        return self.call(GET_ALL_CHILDREN_NUMBER, path_body(path), lambda r: r.int())

    def multi(self, ops, opcode=MULTI):
        """ops: (opcode, body) pairs; returns a list of per-op results."""
        def decode(reader):
            results = []
            while True:
                op_type, done, err = reader.int(), reader.bool(), reader.int()
                if done:
                    break
                if op_type == -1:
                    results.append(("error", error_name(reader.int())))
                elif op_type == CREATE:
                    results.append(("create", reader.string()))
                elif op_type == CREATE2:
                    results.append(("create2", reader.string(), reader.stat()))
                elif op_type in (DELETE, CHECK):
                    results.append((op_type == DELETE and "delete" or "check",))
                elif op_type == SET_DATA:
                    results.append(("setData", reader.stat()))
                elif op_type == GET_DATA:
                    results.append(("getData", reader.buffer(), reader.stat()))
                elif op_type == GET_CHILDREN:
                    results.append(("getChildren", sorted(reader.strings() or [])))
                else:
                    results.append(("type%d" % op_type, reader.data[reader.offset:].hex()))
                    break
            return results
        return self.call(opcode, multi_body(ops), decode)
