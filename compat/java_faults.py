"""Proxies that make a healthy server misbehave the way two past MiniZK bugs did.

They sit between the Java checks and each member (``compat.java_ensemble --fault-check``) to
show that the checks catch those bugs whatever server is behind them:

* ``xid-minus-8`` -- the reply to SetWatches/SetWatches2 (opcodes 101/105) carries xid -8 instead
  of the request's xid. ZooKeeper's Java client numbers these requests like any other after a
  reconnect and drops the connection on "Xid out of order".
* ``hold-closed`` -- when the member closes a client's connection after the handshake (as it must
  when the session is closed through another member), the proxy keeps the client's side open and
  answers its pings, as a member that forgot the connection would.

Frames are the ZooKeeper wire protocol's: a 4-byte big-endian length, then the body. The first
frame each way is the connect request/response; after that a request starts with xid and opcode,
a reply with xid, zxid and error code.
"""

import socket
import struct
import threading

MODES = ("xid-minus-8", "hold-closed")
SET_WATCHES_OPCODES = (101, 105)
PING_OPCODE, PING_XID, SET_WATCHES_XID = 11, -2, -8


def _read_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_frame(sock):
    try:
        head = _read_exact(sock, 4)
        if head is None:
            return None
        return _read_exact(sock, struct.unpack(">i", head)[0])
    except OSError:
        return None


def _send_frame(sock, body):
    sock.sendall(struct.pack(">i", len(body)) + body)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Connection:
    """One client connection and the proxy's connection to the member."""

    def __init__(self, mode, client, target_port):
        self.mode, self.client = mode, client
        self.server = socket.create_connection(("127.0.0.1", target_port))
        self.lock = threading.Lock()
        self.set_watches_xids = set()
        self.member_gone = False
        self.last_zxid = 0
        for pump in (self._client_to_member, self._member_to_client):
            threading.Thread(target=pump, daemon=True).start()

    def _client_to_member(self):
        handshake = True
        while True:
            frame = _read_frame(self.client)
            if frame is None:
                _close(self.server)
                _close(self.client)
                return
            if not handshake and len(frame) >= 8:
                xid, opcode = struct.unpack(">ii", frame[:8])
                with self.lock:
                    if opcode in SET_WATCHES_OPCODES:
                        self.set_watches_xids.add(xid)
                    gone = self.member_gone
                if gone:
                    if opcode == PING_OPCODE:  # a member that kept the connection answers pings
                        _send_frame(self.client, struct.pack(">iqi", PING_XID, self.last_zxid, 0))
                    continue
            handshake = False
            try:
                _send_frame(self.server, frame)
            except OSError:
                pass

    def _member_to_client(self):
        handshake = True
        while True:
            frame = _read_frame(self.server)
            if frame is None:
                if self.mode == "hold-closed" and not handshake:
                    with self.lock:
                        self.member_gone = True
                    return
                _close(self.client)
                return
            if not handshake and len(frame) >= 16:
                xid, zxid, _ = struct.unpack(">iqi", frame[:16])
                self.last_zxid = max(self.last_zxid, zxid)
                if self.mode == "xid-minus-8":
                    with self.lock:
                        rewrite = xid in self.set_watches_xids
                        self.set_watches_xids.discard(xid)
                    if rewrite:
                        frame = struct.pack(">i", SET_WATCHES_XID) + frame[4:]
            handshake = False
            try:
                _send_frame(self.client, frame)
            except OSError:
                _close(self.server)
                return


class FaultProxy:
    """Listens on a free loopback port and forwards every connection to `target_port`."""

    def __init__(self, mode, target_port):
        if mode not in MODES:
            raise ValueError("unknown fault %r (known: %s)" % (mode, ", ".join(MODES)))
        self.mode, self.target_port = mode, target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                _Connection(self.mode, client, self.target_port)
            except OSError:
                _close(client)  # the member is down: refuse as it would

    def close(self):
        self.listener.close()
