"""Scenarios for the differential tests (compat/differential.py).

A scenario is a function of one ``Recorder`` (``t``).  It opens clients with
``t.kazoo(name)`` / ``t.raw(name)``, runs operations through ``t.step(label,
action)`` -- which records the normalised result or exception class -- and
records watch events with ``t.events_now(label)``.  Each scenario starts on a
fresh server, so absolute values (cversion of ``/``, sequence numbers under
``/``) are comparable too.  Keep labels unique within a scenario: they make
the differences readable.
"""

import time

from kazoo.exceptions import ConnectionLoss
from kazoo.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    make_digest_acl,
)

from compat import rawzk

SYSTEM_NODES = ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config")


def ls(client, path, **options):
    """get_children, sorted (with include_data: sorted children and the Stat)."""
    result = client.get_children(path, **options)
    if isinstance(result, tuple):
        return sorted(result[0]), result[1]
    return sorted(result)


def stat_of(t, client, path, label=None):
    return t.step(label or "exists " + path, lambda: client.exists(path))


# -- the tree and create ---------------------------------------------------------------
def initial_tree(t):
    """Nodes, data, ACLs and Stats of a fresh server's tree."""
    zk = t.kazoo("a")
    for path in SYSTEM_NODES:
        t.step("get " + path, lambda: zk.get(path))
        t.step("children " + path, lambda: ls(zk, path))
        t.step("acl " + path, lambda: zk.get_acls(path))


def create_modes(t):
    """Every kazoo create mode, include_data, null and empty data, trailing-slash sequentials."""
    zk = t.kazoo("a")
    t.step("create persistent", lambda: zk.create("/p", b"data"))
    t.step("create include_data", lambda: zk.create("/pd", b"xy", include_data=True))
    t.step("create ephemeral", lambda: zk.create("/e", b"", ephemeral=True))
    t.step("create ephemeral include_data",
           lambda: zk.create("/ed", b"1", ephemeral=True, include_data=True))
    t.step("create parent /s", lambda: zk.create("/s"))
    for index in range(3):
        t.step("create sequential %d" % index, lambda: zk.create("/s/n-", b"v", sequence=True))
    for index in range(2):
        t.step("create ephemeral sequential %d" % index,
               lambda: zk.create("/s/e-", ephemeral=True, sequence=True))
    t.step("create sequential include_data",
           lambda: zk.create("/s/d-", sequence=True, include_data=True))
    t.step("create sequential trailing slash", lambda: zk.create("/s/", sequence=True))
    t.step("create sequential no prefix under /", lambda: zk.create("/", sequence=True))
    t.step("create null data", lambda: zk.create("/null", None))
    t.step("create empty data", lambda: zk.create("/empty", b""))
    for path in ("/p", "/pd", "/e", "/ed", "/s", "/null", "/empty", "/"):
        t.step("get " + path, lambda: zk.get(path))
    t.step("children /s", lambda: ls(zk, "/s"))
    t.step("children / include_data", lambda: ls(zk, "/", include_data=True))
    t.step("set null data", lambda: zk.set("/p", None))
    t.step("get after set null", lambda: zk.get("/p"))
    t.step("makepath", lambda: zk.create("/mk/a/b/c", b"deep", makepath=True))
    t.step("get makepath parent", lambda: zk.get("/mk/a"))
    t.step("ensure_path", lambda: zk.ensure_path("/mk/x/y"))
    t.step("children /mk", lambda: ls(zk, "/mk"))


def create_errors(t):
    """Create under a missing parent, under an ephemeral, duplicates, system nodes, bad ACLs."""
    zk = t.kazoo("a")
    t.step("create under missing parent", lambda: zk.create("/missing/child"))
    t.step("create ephemeral parent", lambda: zk.create("/eph", ephemeral=True))
    t.step("create under ephemeral", lambda: zk.create("/eph/child"))
    t.step("create sequential under ephemeral", lambda: zk.create("/eph/s-", sequence=True))
    t.step("create /dup", lambda: zk.create("/dup", b"1"))
    t.step("create /dup again", lambda: zk.create("/dup", b"2"))
    t.step("get /dup", lambda: zk.get("/dup"))
    t.step("create /", lambda: zk.create("/"))
    t.step("create /zookeeper", lambda: zk.create("/zookeeper"))
    t.step("create /zookeeper/quota", lambda: zk.create("/zookeeper/quota"))
    t.step("create under /zookeeper", lambda: zk.create("/zookeeper/mine", b"m"))
    t.step("create under /zookeeper/quota", lambda: zk.create("/zookeeper/quota/q"))
    t.step("create under /zookeeper/config", lambda: zk.create("/zookeeper/config/c"))
    t.step("children /zookeeper", lambda: ls(zk, "/zookeeper"))
    t.step("create empty acl", lambda: zk.create("/badacl1", acl=[]))
    t.step("create world:foo acl",
           lambda: zk.create("/badacl2", acl=[ACL(31, Id("world", "foo"))]))
    t.step("create auth acl without credentials",
           lambda: zk.create("/badacl3", acl=CREATOR_ALL_ACL))
    t.step("create unknown scheme acl",
           lambda: zk.create("/badacl4", acl=[ACL(31, Id("nosuch", "x"))]))
    t.step("create digest acl without colon",
           lambda: zk.create("/badacl5", acl=[ACL(31, Id("digest", "nocolon"))]))
    t.step("create ip acl", lambda: zk.create("/ipacl", acl=[ACL(31, Id("ip", "127.0.0.1"))]))
    t.step("create ip cidr acl",
           lambda: zk.create("/ipacl2", acl=[ACL(31, Id("ip", "127.0.0.0/8"))]))
    t.step("create bad ip acl", lambda: zk.create("/ipacl3", acl=[ACL(31, Id("ip", "300.1.2.3"))]))
    t.step("create duplicate acl entries",
           lambda: zk.create("/dupacl", acl=OPEN_ACL_UNSAFE + OPEN_ACL_UNSAFE))
    t.step("acl /dupacl", lambda: zk.get_acls("/dupacl"))
    t.step("acl /ipacl", lambda: zk.get_acls("/ipacl"))
    t.step("get /ipacl", lambda: zk.get("/ipacl"))
    t.step("children /", lambda: ls(zk, "/"))


# -- delete, setData, versions ---------------------------------------------------------
def delete_versions(t):
    """delete with right/wrong/-1 versions, non-empty, missing, system nodes; parent Stat."""
    zk = t.kazoo("a")
    zk.create("/d")
    t.step("create /d/a", lambda: zk.create("/d/a", b"1"))
    t.step("set /d/a", lambda: zk.set("/d/a", b"2"))
    t.step("delete wrong version", lambda: zk.delete("/d/a", version=0))
    t.step("delete version 5", lambda: zk.delete("/d/a", version=5))
    t.step("delete right version", lambda: zk.delete("/d/a", version=1))
    stat_of(t, zk, "/d", "parent after delete")
    t.step("delete missing", lambda: zk.delete("/d/a"))
    t.step("delete missing parent", lambda: zk.delete("/nope/a"))
    t.step("create /d/b", lambda: zk.create("/d/b"))
    t.step("create /d/b/c", lambda: zk.create("/d/b/c"))
    t.step("delete non-empty", lambda: zk.delete("/d/b"))
    t.step("delete non-empty wrong version", lambda: zk.delete("/d/b", version=3))
    t.step("delete -1 leaf", lambda: zk.delete("/d/b/c", version=-1))
    t.step("delete now empty", lambda: zk.delete("/d/b"))
    stat_of(t, zk, "/d", "parent after deletes")
    for path in SYSTEM_NODES:
        t.step("delete " + path, lambda: zk.delete(path))
    t.step("delete /zookeeper child", lambda: (zk.create("/zookeeper/tmp"),
                                               zk.delete("/zookeeper/tmp")))
    t.step("recreate /d/a", lambda: zk.create("/d/a", b"again", include_data=True))
    t.step("delete recursive", lambda: (zk.create("/r/x/y", makepath=True),
                                        zk.delete("/r", recursive=True)))
    t.step("exists /r", lambda: zk.exists("/r"))
    t.step("children /", lambda: ls(zk, "/"))
    t.step("stat /", lambda: zk.exists("/"))


def set_data_versions(t):
    """setData with -1, right and wrong versions; Stat changes; system nodes."""
    zk = t.kazoo("a")
    t.step("create /v", lambda: zk.create("/v", b"0", include_data=True))
    t.step("set -1", lambda: zk.set("/v", b"one"))
    t.step("set right version", lambda: zk.set("/v", b"two", version=1))
    t.step("set wrong version", lambda: zk.set("/v", b"three", version=1))
    t.step("set version -2", lambda: zk.set("/v", b"x", version=-2))
    t.step("get /v", lambda: zk.get("/v"))
    t.step("set same data", lambda: zk.set("/v", b"two"))
    t.step("set empty", lambda: zk.set("/v", b""))
    t.step("get empty", lambda: zk.get("/v"))
    t.step("set missing", lambda: zk.set("/nope", b"x"))
    t.step("set /", lambda: zk.set("/", b"root"))
    t.step("get /", lambda: zk.get("/"))
    t.step("set /zookeeper", lambda: zk.set("/zookeeper", b"zk"))
    t.step("set /zookeeper/quota", lambda: zk.set("/zookeeper/quota", b"q"))
    t.step("set /zookeeper/config", lambda: zk.set("/zookeeper/config", b"c"))
    t.step("get /zookeeper/config", lambda: zk.get("/zookeeper/config"))
    t.step("parent stat unchanged by child set", lambda: (zk.create("/v/c"),
                                                          zk.set("/v/c", b"z"),
                                                          zk.exists("/v"))[2])


# -- ACLs ---------------------------------------------------------------------------------
def acl_versions(t):
    """setACL/getACL with aversion right and wrong, ACL effects on one client."""
    zk = t.kazoo("a")
    zk.create("/acl", b"x")
    t.step("get_acl", lambda: zk.get_acls("/acl"))
    t.step("set_acl wrong aversion", lambda: zk.set_acls("/acl", READ_ACL_UNSAFE, version=3))
    t.step("set_acl right aversion", lambda: zk.set_acls("/acl", OPEN_ACL_UNSAFE, version=0))
    t.step("set_acl -1", lambda: zk.set_acls("/acl", OPEN_ACL_UNSAFE))
    t.step("get_acl after", lambda: zk.get_acls("/acl"))
    t.step("set_acl empty", lambda: zk.set_acls("/acl", []))
    t.step("set_acl missing", lambda: zk.set_acls("/none", OPEN_ACL_UNSAFE))
    t.step("get_acl missing", lambda: zk.get_acls("/none"))
    t.step("set_acl read-only", lambda: zk.set_acls("/acl", READ_ACL_UNSAFE, version=2))
    t.step("get read-only", lambda: zk.get("/acl"))
    t.step("set read-only", lambda: zk.set("/acl", b"y"))
    t.step("create child of read-only", lambda: zk.create("/acl/c"))
    t.step("set_acl read-only node", lambda: zk.set_acls("/acl", OPEN_ACL_UNSAFE))
    t.step("exists read-only", lambda: zk.exists("/acl"))
    t.step("delete read-only node", lambda: zk.delete("/acl"))
    t.step("create write-only", lambda: zk.create("/wo", b"w", acl=[ACL(2, Id("world", "anyone"))]))
    t.step("get write-only", lambda: zk.get("/wo"))
    t.step("children write-only", lambda: zk.get_children("/wo"))
    t.step("set write-only", lambda: zk.set("/wo", b"w2"))
    t.step("get_acl write-only", lambda: zk.get_acls("/wo"))
    t.step("create create-only parent",
           lambda: zk.create("/co", acl=[ACL(4, Id("world", "anyone"))]))
    t.step("create under create-only", lambda: zk.create("/co/k"))
    t.step("delete under create-only", lambda: zk.delete("/co/k"))
    t.step("setACL on /zookeeper/config", lambda: zk.set_acls("/zookeeper/config", OPEN_ACL_UNSAFE))


def acl_digest(t):
    """digest auth, make_digest_acl, a second client denied, auth scheme, super, masking."""
    alice = t.kazoo("alice")
    other = t.kazoo("other")
    t.step("alice add_auth", lambda: alice.add_auth("digest", "alice:secret"))
    alice_all = make_digest_acl("alice", "secret", all=True)
    t.step("create digest node", lambda: alice.create("/sec", b"hidden", acl=[alice_all]))
    t.step("alice get", lambda: alice.get("/sec"))
    t.step("alice get_acl", lambda: alice.get_acls("/sec"))
    t.step("other get", lambda: other.get("/sec"))
    t.step("other exists", lambda: other.exists("/sec"))
    t.step("other children", lambda: other.get_children("/sec"))
    t.step("other set", lambda: other.set("/sec", b"x"))
    t.step("other get_acl", lambda: other.get_acls("/sec"))
    t.step("other create child", lambda: other.create("/sec/c"))
    t.step("other set_acl", lambda: other.set_acls("/sec", OPEN_ACL_UNSAFE))
    t.step("other add_auth bob", lambda: other.add_auth("digest", "bob:pw"))
    t.step("other get as bob", lambda: other.get("/sec"))
    t.step("other add_auth alice wrong password", lambda: other.add_auth("digest", "alice:nope"))
    t.step("other get still denied", lambda: other.get("/sec"))
    t.step("other add_auth alice", lambda: other.add_auth("digest", "alice:secret"))
    t.step("other get as alice", lambda: other.get("/sec"))
    t.step("create auth-scheme node", lambda: alice.create("/mine", b"m", acl=CREATOR_ALL_ACL))
    t.step("get_acl auth-scheme node", lambda: alice.get_acls("/mine"))
    read_world = ACL(1, Id("world", "anyone"))
    t.step("create mixed acl node", lambda: alice.create("/mixed", b"r", acl=[alice_all, read_world]))
    fresh = t.kazoo("fresh")
    t.step("fresh get mixed", lambda: fresh.get("/mixed"))
    t.step("fresh get_acl mixed (masked)", lambda: fresh.get_acls("/mixed"))
    t.step("fresh set mixed", lambda: fresh.set("/mixed", b"w"))
    t.step("fresh delete under mixed", lambda: fresh.delete("/mixed"))
    t.step("fresh create world read-only", lambda: fresh.create("/ro", b"r", acl=READ_ACL_UNSAFE))
    t.step("alice set world read-only", lambda: alice.set("/ro", b"w"))
    t.step("alice get world read-only", lambda: alice.get("/ro"))
    boss = t.kazoo("super", auth_data=[("digest", "super:test")])
    t.step("super get", lambda: boss.get("/sec"))
    t.step("super set", lambda: boss.set("/sec", b"overridden"))
    t.step("super get_acl", lambda: boss.get_acls("/sec"))
    t.step("super set_acl", lambda: boss.set_acls("/ro", OPEN_ACL_UNSAFE))
    t.step("fresh set after super opened it", lambda: fresh.set("/ro", b"open"))
    t.step("super delete digest node", lambda: boss.delete("/sec"))
    t.step("unknown auth scheme", lambda: fresh.add_auth("nosuchscheme", "x"))
    time.sleep(0.5)
    t.step("fresh state after failed auth", lambda: fresh.client_state)


# -- paths ----------------------------------------------------------------------------------
INVALID_PATHS = [
    ("double slash", "/a//b"),
    ("trailing slash", "/a/"),
    ("dot", "/."),
    ("dot-dot", "/a/.."),
    ("inner dot", "/a/./b"),
    ("no leading slash", "noslash"),
    ("empty", ""),
    ("control char", "/a\x01b"),
    ("DEL char", "/a\x7fb"),
    ("C1 char", "/a\u0085b"),
    ("private use", "/a\ue000b"),
    ("U+FFF0", "/a\ufff0b"),
    ("non-BMP", "/a\U0001F600b"),
    ("NUL", "/a\x00b"),
]
VALID_ODD_PATHS = [("three dots", "/..."), ("dot inside", "/a.b"), ("dot prefix", "/.x"),
                   ("space", "/a b"), ("unicode", "/caf\u00e9")]


def paths_kazoo(t):
    """Invalid and odd paths as kazoo sends them (kazoo normalises some itself)."""
    zk = t.kazoo("a")
    zk.create("/a")
    for label, path in INVALID_PATHS + VALID_ODD_PATHS:
        t.step("create %s" % label, lambda: zk.create(path, b"x"))
        t.step("exists %s" % label, lambda: zk.exists(path))
    t.step("children /", lambda: ls(zk, "/"))
    t.step("children /a", lambda: ls(zk, "/a"))


def paths_raw(t):
    """Invalid paths sent unaltered: create/delete/set/get/exists/children/acl/sync."""
    raw = t.raw("raw")
    raw.create("/a")
    for label, path in INVALID_PATHS:
        t.step("create %s" % label, lambda: raw.create(path, b"x"))
        t.step("create2 %s" % label, lambda: raw.create(path, b"x", opcode=rawzk.CREATE2))
        t.step("sequential %s" % label, lambda: raw.create(path, b"x", flags=2))
        t.step("delete %s" % label, lambda: raw.delete(path))
        t.step("setData %s" % label, lambda: raw.set_data(path, b"y"))
        t.step("getData %s" % label, lambda: raw.get_data(path))
        t.step("exists %s" % label, lambda: raw.exists(path))
        t.step("children %s" % label, lambda: raw.get_children(path))
        t.step("setACL %s" % label, lambda: raw.set_acl(path, rawzk.OPEN_ACL))
        t.step("getACL %s" % label, lambda: raw.get_acl(path))
        t.step("sync %s" % label, lambda: raw.sync(path))
    for label, path in VALID_ODD_PATHS:
        t.step("create %s" % label, lambda: raw.create(path, b"x"))
        t.step("getData %s" % label, lambda: raw.get_data(path))
    t.step("create /bad/ missing parent", lambda: raw.create("/bad/", b"x"))
    t.step("create /x/./b missing parent", lambda: raw.create("/x/./b"))
    t.step("sequential /a/ trailing slash", lambda: raw.create("/a/", b"", flags=2))
    t.step("null path create", lambda: raw.create(None))
    t.step("null path getData", lambda: raw.get_data(None))
    t.step("children /", lambda: raw.get_children("/"))
    t.step("children /a", lambda: raw.get_children("/a"))
    t.step("connection still open", raw.still_open)


# -- multi ------------------------------------------------------------------------------------
def multi_failures(t):
    """Transactions with a failing op first, in the middle and last."""
    zk = t.kazoo("a")
    zk.create("/m", b"base")
    tx = zk.transaction()
    tx.create("/m/a", b"1")
    tx.set_data("/m/a", b"2")
    tx.check("/m", 7)
    tx.create("/m/b")
    t.step("check fails in the middle", tx.commit)
    t.step("nothing applied /m/a", lambda: zk.exists("/m/a"))
    t.step("stat /m after failed multi", lambda: zk.exists("/m"))
    tx = zk.transaction()
    tx.delete("/m/missing")
    tx.create("/m/c")
    t.step("first op fails", tx.commit)
    tx = zk.transaction()
    tx.create("/m/d")
    tx.create("/m/d")
    t.step("duplicate create in one multi", tx.commit)
    tx = zk.transaction()
    tx.create("/m/e")
    tx.delete("/m")
    t.step("delete non-empty in multi", tx.commit)
    tx = zk.transaction()
    tx.create("/m/f")
    tx.set_data("/m/f", b"x", version=3)
    t.step("bad version last", tx.commit)
    tx = zk.transaction()
    tx.create("/m/g", ephemeral=True)
    tx.create("/m/g/h")
    t.step("child of ephemeral created in same multi", tx.commit)
    tx = zk.transaction()
    tx.create("/zookeeper/q")
    tx.delete("/zookeeper")
    t.step("delete system node in multi", tx.commit)
    tx = zk.transaction()
    tx.create("/m/i", acl=[])
    t.step("invalid acl in multi", tx.commit)
    t.step("children /m", lambda: ls(zk, "/m"))
    t.step("stat /m at end", lambda: zk.exists("/m"))
    t.step("create after failed multis", lambda: zk.create("/m/z", include_data=True))


def multi_success(t):
    """A transaction that creates, sets, checks and deletes; shared zxid; empty multi."""
    zk = t.kazoo("a")
    watcher = t.kazoo("w")
    zk.create("/t")
    watcher.get_children("/t", watch=t.watcher("w"))
    watcher.exists("/t/a", watch=t.watcher("w"))
    tx = zk.transaction()
    tx.create("/t/a", b"1")
    tx.set_data("/t/a", b"2")
    tx.check("/t/a", 1)
    tx.create("/t/b", b"b")
    tx.delete("/t/b")
    tx.create("/t/s-", sequence=True)
    tx.create("/t/e", ephemeral=True)
    t.step("commit", tx.commit)
    t.events_now("watcher after multi")
    t.step("get /t/a", lambda: zk.get("/t/a"))
    t.step("stat /t", lambda: zk.exists("/t"))
    t.step("children /t", lambda: ls(zk, "/t"))
    tx = zk.transaction()
    tx.set_data("/t/a", b"3", version=1)
    tx.delete("/t/a", version=2)
    t.step("set then delete same node", tx.commit)
    t.step("exists /t/a", lambda: zk.exists("/t/a"))
    t.step("empty transaction", lambda: zk.transaction().commit())
    t.step("create after empty multi", lambda: zk.create("/t/after", include_data=True))


# -- sequence numbers and child stats --------------------------------------------------------
def sequential_numbering(t):
    """Sequence suffixes after deletes and non-sequential creates."""
    zk = t.kazoo("a")
    zk.create("/q")
    names = [t.step("seq %d" % index, lambda: zk.create("/q/n-", sequence=True))
             for index in range(3)]
    t.step("delete last", lambda: zk.delete(names[2]))
    t.step("delete middle", lambda: zk.delete(names[1]))
    t.step("seq after deletes", lambda: zk.create("/q/n-", sequence=True))
    t.step("plain child", lambda: zk.create("/q/plain"))
    t.step("seq after plain child", lambda: zk.create("/q/n-", sequence=True))
    t.step("other prefix", lambda: zk.create("/q/other-", sequence=True))
    t.step("failed create", lambda: zk.create("/q/plain"))
    t.step("seq after failed create", lambda: zk.create("/q/n-", sequence=True))
    t.step("ephemeral seq", lambda: zk.create("/q/e-", sequence=True, ephemeral=True))
    t.step("children /q", lambda: ls(zk, "/q"))
    t.step("stat /q", lambda: zk.exists("/q"))
    t.step("seq under /", lambda: zk.create("/top-", sequence=True))
    t.step("seq under / again", lambda: zk.create("/top-", sequence=True))


def child_stats(t):
    """cversion, pzxid and numChildren as children come and go."""
    zk = t.kazoo("a")
    other = t.kazoo("b")
    t.step("stat / fresh", lambda: zk.exists("/"))
    t.step("stat /zookeeper fresh", lambda: zk.exists("/zookeeper"))
    t.step("create /c", lambda: zk.create("/c", include_data=True))
    t.step("stat / after create", lambda: zk.exists("/"))
    for name in ("x", "y", "z"):
        t.step("create /c/" + name, lambda: zk.create("/c/" + name))
        t.step("stat /c after " + name, lambda: zk.exists("/c"))
    t.step("set child", lambda: zk.set("/c/x", b"data"))
    t.step("stat /c after set child", lambda: zk.exists("/c"))
    t.step("set /c", lambda: zk.set("/c", b"self"))
    t.step("stat /c after set self", lambda: zk.exists("/c"))
    t.step("delete /c/y", lambda: zk.delete("/c/y"))
    t.step("stat /c after delete", lambda: zk.exists("/c"))
    t.step("ephemeral child by b", lambda: other.create("/c/eph", ephemeral=True))
    t.step("stat /c/eph", lambda: zk.exists("/c/eph"))
    t.step("set_acl /c", lambda: zk.set_acls("/c", OPEN_ACL_UNSAFE))
    t.step("stat /c after set_acl", lambda: zk.exists("/c"))
    other.stop()
    t.step("stat /c after b closed", lambda: zk.exists("/c"))
    t.step("children /c", lambda: ls(zk, "/c", include_data=True))
    t.step("grandchild", lambda: zk.create("/c/x/g"))
    t.step("stat /c after grandchild", lambda: zk.exists("/c"))
    t.step("stat /c/x after grandchild", lambda: zk.exists("/c/x"))


# -- watches ----------------------------------------------------------------------------------
def watches_two_sessions(t):
    """Data, exists and child watches set by one session, fired by another."""
    a = t.kazoo("a")
    b = t.kazoo("b")
    w = t.watcher("a")
    b.create("/w", b"0")
    t.step("a get watch /w", lambda: a.get("/w", watch=w))
    t.step("a exists watch /missing", lambda: a.exists("/missing", watch=w))
    t.step("a children watch /w", lambda: ls(a, "/w", watch=w))
    t.step("a get watch on missing node", lambda: a.get("/nowhere", watch=w))
    t.step("a children watch on missing node", lambda: a.get_children("/nowhere", watch=w))
    t.step("b set /w", lambda: b.set("/w", b"1"))
    t.events_now("after set")
    t.step("b set /w again (watch consumed)", lambda: b.set("/w", b"2"))
    t.events_now("after second set")
    t.step("b create /missing", lambda: b.create("/missing"))
    t.step("b create /nowhere", lambda: b.create("/nowhere"))
    t.events_now("after creates")
    t.step("b create /w/c", lambda: b.create("/w/c"))
    t.events_now("after child create")
    t.step("a rewatch /w data", lambda: a.get("/w", watch=w))
    t.step("a rewatch /w children", lambda: ls(a, "/w", watch=w))
    t.step("a watch /w/c data", lambda: a.get("/w/c", watch=w))
    t.step("b delete /w/c", lambda: b.delete("/w/c"))
    t.events_now("after child delete")
    t.step("a rewatch /w children again", lambda: ls(a, "/w", watch=w))
    t.step("b delete /w", lambda: b.delete("/w"))
    t.events_now("after delete of watched node")
    t.step("a exists watch /self", lambda: a.exists("/self", watch=w))
    t.step("a creates /self", lambda: a.create("/self"))
    t.events_now("own write")
    t.step("a and b watch /both", lambda: (a.exists("/both", watch=w),
                                           b.exists("/both", watch=t.watcher("b"))))
    t.step("a creates /both", lambda: a.create("/both"))
    t.events_now("both watching")
    t.step("set_acl does not fire", lambda: (a.get("/both", watch=w),
                                             b.set_acls("/both", OPEN_ACL_UNSAFE)))
    t.events_now("after set_acl")
    t.step("sync does not fire", lambda: b.sync("/both"))
    t.events_now("after sync")
    t.step("failed set does not fire", lambda: b.set("/both", b"x", version=9))
    t.events_now("after failed set")
    t.step("multi fires", lambda: (a.get_children("/both", watch=w),
                                   _transaction(b, ("create", "/both/k"))))
    t.events_now("after multi")
    t.step("failed multi does not fire", lambda: (
        a.exists("/both/m", watch=w),
        _failing_tx(b)))
    t.events_now("after failed multi")


def _transaction(client, *ops):
    tx = client.transaction()
    for name, *args in ops:
        getattr(tx, name)(*args)
    return tx.commit()


def _failing_tx(client):
    tx = client.transaction()
    tx.create("/both/m")
    tx.check("/both", 42)
    return tx.commit()


def ephemeral_close_fires(t):
    """A session closes: its ephemerals go and other sessions' watches fire."""
    a = t.kazoo("a")
    b = t.kazoo("b")
    w = t.watcher("b")
    a.create("/e1")
    a.create("/e2")
    t.step("a ephemeral /e1/x", lambda: a.create("/e1/x", b"1", ephemeral=True))
    t.step("a ephemeral /e2/y", lambda: a.create("/e2/y", ephemeral=True))
    t.step("a ephemeral seq", lambda: a.create("/e2/s-", ephemeral=True, sequence=True))
    t.step("b watches", lambda: (b.get("/e1/x", watch=w), ls(b, "/e1", watch=w),
                                 b.exists("/e2/y", watch=w)))
    t.step("stat /e1/x owner", lambda: b.exists("/e1/x"))
    t.step("a closes", a.stop)
    t.events_now("after close", ordered=False)
    t.step("children /e1", lambda: ls(b, "/e1"))
    t.step("children /e2", lambda: ls(b, "/e2"))
    t.step("stat /e1", lambda: b.exists("/e1"))
    t.step("stat /e2", lambda: b.exists("/e2"))


def reads_and_sync(t):
    """sync, exists on missing nodes, include_data, null vs empty data."""
    zk = t.kazoo("a")
    t.step("sync /", lambda: zk.sync("/"))
    t.step("sync missing", lambda: zk.sync("/does/not/exist"))
    t.step("exists missing", lambda: zk.exists("/nope"))
    t.step("get missing", lambda: zk.get("/nope"))
    t.step("children missing", lambda: zk.get_children("/nope"))
    t.step("children missing include_data", lambda: zk.get_children("/nope", include_data=True))
    zk.create("/n", None)
    zk.create("/n/empty", b"")
    zk.create("/n/one", b"\x00")
    t.step("get null", lambda: zk.get("/n"))
    t.step("get empty", lambda: zk.get("/n/empty"))
    t.step("get one NUL byte", lambda: zk.get("/n/one"))
    t.step("children include_data", lambda: ls(zk, "/n", include_data=True))
    t.step("children / include_data", lambda: ls(zk, "/", include_data=True))
    t.step("children of leaf", lambda: ls(zk, "/n/one", include_data=True))
    t.step("get_acl /n", lambda: zk.get_acls("/n"))
    t.step("sync after writes", lambda: zk.sync("/n"))
    t.step("server version", zk.server_version)


def large_data(t):
    """Data sizes around the 1 MiB request limit."""
    zk = t.kazoo("a")
    t.step("create 1,000,000 bytes", lambda: zk.create("/big", b"a" * 1000000))
    t.step("get 1,000,000 bytes", lambda: zk.get("/big"))
    t.step("set 1,048,000 bytes", lambda: zk.set("/big", b"b" * 1048000))
    t.step("get 1,048,000 bytes", lambda: zk.get("/big"))
    raw = t.raw("raw")
    # create frame payload = 8 (header) + 4+5 ("/huge") + 4+n + 4+4+4+5+4+6 (open ACL) + 4 (flags)
    overhead = 8 + 4 + 5 + 4 + (4 + 4 + 4 + 5 + 4 + 6) + 4
    t.step("raw create, payload exactly 1,048,575 bytes",
           lambda: raw.create("/huge", b"h" * (1048575 - overhead)))
    t.step("raw connection open", raw.still_open)
    raw2 = t.raw("raw2")
    t.step("raw create, payload 1,048,576 bytes",
           lambda: _closed_or(lambda: raw2.create("/huge2", b"h" * (1048576 - overhead))))
    t.step("raw2 connection open", raw2.still_open)
    t.step("kazoo create 1 MiB + 1", lambda: zk.create("/huge3", b"c" * (1024 * 1024 + 1)))
    t.step("kazoo reconnects", lambda: _wait_connected(zk))
    t.step("exists /huge2", lambda: zk.exists("/huge2"))
    t.step("exists /huge3", lambda: zk.exists("/huge3"))
    t.step("stat /huge", lambda: zk.exists("/huge"))


def _closed_or(action):
    try:
        return action()
    except rawzk.Closed:
        return "connection closed"


def _wait_connected(client, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.connected:
            try:
                client.exists("/")
                return True
            except ConnectionLoss:
                pass
        time.sleep(0.05)
    return False


# -- raw-protocol scenarios -------------------------------------------------------------------
def container_and_ttl(t):
    """createContainer and createTTL opcodes, flags and ttl validation, in and out of multi."""
    raw = t.raw("raw")
    t.step("createContainer flag 4", lambda: raw.create("/c", flags=4, opcode=rawzk.CREATE_CONTAINER))
    t.step("createContainer flag 0", lambda: raw.create("/c0", flags=0, opcode=rawzk.CREATE_CONTAINER))
    t.step("child of container", lambda: raw.create("/c/child", b"x"))
    t.step("ephemeral child of container", lambda: raw.create("/c/eph", flags=1))
    t.step("stat container", lambda: raw.exists("/c"))
    t.step("ttl node", lambda: raw.create("/ttl", b"t", flags=5, opcode=rawzk.CREATE_TTL, ttl=60000))
    t.step("ttl sequential", lambda: raw.create("/ttls-", flags=6, opcode=rawzk.CREATE_TTL, ttl=60000))
    t.step("ttl zero", lambda: raw.create("/ttl0", flags=5, opcode=rawzk.CREATE_TTL, ttl=0))
    t.step("ttl too large", lambda: raw.create("/ttlbig", flags=5, opcode=rawzk.CREATE_TTL,
                                               ttl=1 << 40))
    t.step("ttl max", lambda: raw.create("/ttlmax", flags=5, opcode=rawzk.CREATE_TTL,
                                         ttl=(1 << 40) - 1))
    t.step("ttl opcode, persistent flag", lambda: raw.create("/ttlp", flags=0,
                                                             opcode=rawzk.CREATE_TTL, ttl=100))
    t.step("ttl opcode, ephemeral flag", lambda: raw.create("/ttle", flags=1,
                                                            opcode=rawzk.CREATE_TTL, ttl=100))
    t.step("ttl flag via create", lambda: raw.create("/ttlc", flags=5))
    t.step("ttl flag via create2", lambda: raw.create("/ttlc2", flags=6, opcode=rawzk.CREATE2))
    for flags in (7, 99, -1):
        t.step("create flags %d" % flags, lambda: raw.create("/f%d" % flags, flags=flags))
    t.step("child of ttl node", lambda: raw.create("/ttl/child"))
    t.step("stat ttl node", lambda: raw.exists("/ttl"))
    t.step("multi with container and ttl", lambda: raw.multi([
        (rawzk.CREATE_CONTAINER, rawzk.create_body("/mc", b"", flags=4)),
        (rawzk.CREATE_TTL, rawzk.create_body("/mt", b"", flags=5, ttl=5000)),
        (rawzk.CREATE2, rawzk.create_body("/m2", b"")),
        (rawzk.CREATE, rawzk.create_body("/m1", b"")),
    ]))
    t.step("children /", lambda: raw.get_children("/"))
    # Last, so that a difference here does not shift every later label.
    t.step("create op1 flag 4", lambda: raw.create("/c1", flags=4))
    t.step("create2 flag 4", lambda: raw.create("/c2", flags=4, opcode=rawzk.CREATE2))
    t.step("stat /c1", lambda: raw.exists("/c1"))
    t.step("connection still open", raw.still_open)


def who_am_i_and_auth(t):
    """whoAmI before and after digest auth; failing auth schemes."""
    raw = t.raw("raw")
    t.step("whoAmI", raw.who_am_i)
    t.step("auth digest bob", lambda: raw.auth("digest", b"bob:secret"))
    t.step("whoAmI after auth", raw.who_am_i)
    t.step("auth digest bob again", lambda: raw.auth("digest", b"bob:secret"))
    t.step("auth digest carol", lambda: raw.auth("digest", b"carol:pw"))
    t.step("whoAmI after two auths", raw.who_am_i)
    t.step("auth digest without colon", lambda: raw.auth("digest", b"nocolon"))
    t.step("whoAmI after odd auth", raw.who_am_i)
    t.step("create with empty acl list", lambda: raw.create("/noacl", acl=[]))
    t.step("create with null acl list", lambda: raw.create("/nullacl", acl=None))
    t.step("create auth acl", lambda: raw.create("/mine", acl=[(31, "auth", "")]))
    t.step("getACL auth acl", lambda: raw.get_acl("/mine"))
    su = t.raw("super")
    t.step("auth super", lambda: su.auth("digest", b"super:test"))
    t.step("whoAmI super", su.who_am_i)
    bad = t.raw("bad")
    t.step("auth unknown scheme", lambda: _closed_or(lambda: bad.auth("nosuch", b"x")))
    t.step("connection open after unknown scheme", bad.still_open)
    ipc = t.raw("ip")
    t.step("auth ip scheme", lambda: _closed_or(lambda: ipc.auth("ip", b"127.0.0.1")))
    t.step("connection open after ip auth", ipc.still_open)


def counts_and_ephemerals(t):
    """getAllChildrenNumber and getEphemerals."""
    raw = t.raw("raw")
    other = t.raw("other")
    for path in ("/a", "/a/b", "/a/b/c", "/a/d", "/e"):
        raw.create(path)
    for path in ("/a/eph1", "/a/b/eph2", "/e/eph3", "/eph4"):
        raw.create(path, flags=1)
    other.create("/a/theirs", flags=1)
    for path in ("/", "/a", "/a/b", "/a/b/c", "/zookeeper", "/missing", ""):
        t.step("allChildrenNumber %r" % path, lambda: raw.get_all_children_number(path))
    for prefix in ("/", "", None, "/a", "/a/", "/a/b", "/e/e", "/nomatch", "eph"):
        t.step("getEphemerals %r" % prefix, lambda: raw.get_ephemerals(prefix))
    t.step("other getEphemerals", lambda: other.get_ephemerals("/"))
    t.step("seq ephemeral", lambda: raw.create("/a/s-", flags=3))
    t.step("getEphemerals after seq", lambda: raw.get_ephemerals("/a"))


def add_watch_modes(t):
    """addWatch persistent and persistent-recursive: which events, and that they stay."""
    raw = t.raw("watcher")
    writer = t.kazoo("writer")
    t.step("addWatch persistent /pw", lambda: raw.add_watch("/pw", 0))
    t.step("addWatch recursive /rw", lambda: raw.add_watch("/rw", 1))
    t.step("addWatch bad mode", lambda: raw.add_watch("/x", 2))
    t.step("create /pw", lambda: writer.create("/pw", b"0"))
    t.step("set /pw", lambda: writer.set("/pw", b"1"))
    t.step("create /pw/c", lambda: writer.create("/pw/c"))
    t.step("set /pw/c", lambda: writer.set("/pw/c", b"c"))
    t.step("delete /pw/c", lambda: writer.delete("/pw/c"))
    t.step("set /pw again", lambda: writer.set("/pw", b"2"))
    t.events_now("persistent")
    t.step("create /rw", lambda: writer.create("/rw"))
    t.step("create /rw/a", lambda: writer.create("/rw/a"))
    t.step("create /rw/a/b", lambda: writer.create("/rw/a/b", b"x"))
    t.step("set /rw/a/b", lambda: writer.set("/rw/a/b", b"y"))
    t.step("delete /rw/a/b", lambda: writer.delete("/rw/a/b"))
    t.step("create /rwx sibling", lambda: writer.create("/rwx"))
    t.events_now("recursive")
    t.step("standard watch too", lambda: raw.exists("/rw/a", watch=True))
    t.step("set /rw/a", lambda: writer.set("/rw/a", b"z"))
    t.step("set /rw/a again", lambda: writer.set("/rw/a", b"zz"))
    t.events_now("recursive and standard")
    t.step("removeWatches persistent /pw (type 3)", lambda: raw.remove_watches("/pw", 3))
    t.step("set /pw after removal", lambda: writer.set("/pw", b"3"))
    t.events_now("after removal")


def check_remove_watches(t):
    """checkWatches / removeWatches for data, child and any watcher types."""
    raw = t.raw("raw")
    writer = t.kazoo("writer")
    writer.create("/x")
    writer.create("/y")
    t.step("check none", lambda: raw.check_watches("/x", 3))
    t.step("exists watch /x", lambda: raw.exists("/x", watch=True))
    t.step("check data", lambda: raw.check_watches("/x", 2))
    t.step("check children", lambda: raw.check_watches("/x", 1))
    t.step("check any", lambda: raw.check_watches("/x", 3))
    t.step("check type 4", lambda: raw.check_watches("/x", 4))
    t.step("check type 0", lambda: raw.check_watches("/x", 0))
    t.step("remove children (none)", lambda: raw.remove_watches("/x", 1))
    t.step("remove data", lambda: raw.remove_watches("/x", 2))
    t.step("check data after remove", lambda: raw.check_watches("/x", 2))
    t.step("set /x", lambda: writer.set("/x", b"1"))
    t.events_now("after removed data watch")
    t.step("children watch /y", lambda: raw.get_children("/y", watch=True))
    t.step("data watch /y", lambda: raw.get_data("/y", watch=True))
    t.step("remove any /y", lambda: raw.remove_watches("/y", 3))
    t.step("check any /y", lambda: raw.check_watches("/y", 3))
    t.step("create /y/c", lambda: writer.create("/y/c"))
    t.events_now("after removed any")
    t.step("exists watch missing", lambda: raw.exists("/z", watch=True))
    t.step("check data on missing", lambda: raw.check_watches("/z", 2))
    t.step("remove type 5", lambda: raw.remove_watches("/z", 5))
    other = t.raw("other")
    t.step("other session checks", lambda: other.check_watches("/z", 2))
    t.step("other session removes", lambda: other.remove_watches("/z", 2))
    t.step("create /z", lambda: writer.create("/z"))
    t.events_now("after other session's remove")


def unknown_and_odd_requests(t):
    """Unknown opcode, top-level check, multiRead, mixed multis."""
    raw = t.raw("raw")
    raw.create("/r", b"data")
    raw.create("/r/c")
    t.step("multiRead", lambda: raw.multi([
        (rawzk.GET_DATA, rawzk.path_body("/r", False)),
        (rawzk.GET_CHILDREN, rawzk.path_body("/r", False)),
        (rawzk.GET_DATA, rawzk.path_body("/missing", False)),
        (rawzk.GET_CHILDREN, rawzk.path_body("/r/c", False)),
    ], opcode=rawzk.MULTI_READ))
    t.step("multiRead with a write", lambda: raw.multi([
        (rawzk.GET_DATA, rawzk.path_body("/r", False)),
        (rawzk.CREATE, rawzk.create_body("/r/w")),
    ], opcode=rawzk.MULTI_READ))
    t.step("multi with a read", lambda: raw.multi([
        (rawzk.CREATE, rawzk.create_body("/r/w")),
        (rawzk.GET_DATA, rawzk.path_body("/r", False)),
    ]))
    t.step("exists /r/w", lambda: raw.exists("/r/w"))
    t.step("empty multi", lambda: raw.multi([]))
    t.step("empty multiRead", lambda: raw.multi([], opcode=rawzk.MULTI_READ))
    t.step("multi create2 and check", lambda: raw.multi([
        (rawzk.CREATE2, rawzk.create_body("/r/c2", b"2")),
        (rawzk.CHECK, rawzk.path_version_body("/r", 0)),
        (rawzk.SET_DATA, rawzk.set_data_body("/r/c2", b"3", 0)),
        (rawzk.DELETE, rawzk.path_version_body("/r/c", 0)),
    ]))
    t.step("setData null", lambda: raw.set_data("/r", None))
    t.step("getData after null", lambda: raw.get_data("/r"))
    t.step("getData empty path", lambda: raw.get_data(""))
    t.step("children empty path", lambda: raw.get_children(""))
    t.step("getChildren2 /r", lambda: raw.get_children2("/r"))
    t.step("unknown opcode 999", lambda: _closed_or(lambda: raw.call(999, b"")))
    t.step("connection open after unknown opcode", raw.still_open)
    raw2 = t.raw("raw2")
    t.step("opcode 10", lambda: _closed_or(lambda: raw2.call(10, b"")))
    t.step("connection open after opcode 10", raw2.still_open)
    raw4 = t.raw("raw4")
    t.step("top-level check", lambda: _closed_or(
        lambda: raw4.call(rawzk.CHECK, rawzk.path_version_body("/r", 0))))
    t.step("connection open after check", raw4.still_open)
    raw3 = t.raw("raw3")
    t.step("session timeout negotiated", lambda: raw3.negotiated_timeout_ms)
    t.step("closeSession", lambda: raw3.call(rawzk.CLOSE_SESSION, b""))
    t.step("connection open after closeSession", raw3.still_open)


def session_handshake(t):
    """ConnectRequest handling: timeouts, resuming, bad passwords, a client ahead of the server."""
    first = t.raw("first")
    t.step("negotiated timeout (asked 10000 ms)", lambda: first.negotiated_timeout_ms)
    for asked in (100, 1000, 3000, 100000):
        t.step("negotiated timeout (asked %d ms)" % asked,
               lambda: _handshake(t, session_timeout_ms=asked))
    first.create("/hs", b"x")
    t.step("resume with the right password",
           lambda: _handshake(t, session_id=first.session_id, password=first.password))
    t.step("first connection after being resumed elsewhere", first.still_open)
    t.step("resume with a wrong password",
           lambda: _handshake(t, session_id=first.session_id, password=b"\x01" * 16))
    t.step("resume an unknown session",
           lambda: _handshake(t, session_id=0x7fff000000000001, password=b"\x00" * 16))
    t.step("client has seen a zxid the server has not",
           lambda: _handshake(t, last_zxid=1 << 40))
    t.step("read-only flag on a read-write server", lambda: _handshake(t, read_only=True))
    t.step("ping", lambda: first.barrier() if not first.closed else "closed")


def _handshake(t, session_timeout_ms=10000, **connect):
    """Connect once and describe the ConnectResponse (or the closed socket)."""
    client = rawzk.RawClient(t.server.host, t.server.port, session_timeout_ms=session_timeout_ms)
    try:
        client.connect(**connect)
    except rawzk.Closed:
        return "connection closed"
    try:
        session = "same session" if client.session_id == connect.get("session_id") else (
            "no session" if client.session_id == 0 else "new session")
        outcome = {"timeout": client.negotiated_timeout_ms, "session": session,
                   "password length": len(client.password or b"")}
        if client.negotiated_timeout_ms > 0:
            outcome["exists /"] = client.exists("/") is not None
    finally:
        client.drop()
    return outcome


def restart_keeps_state(t):
    """A server restarted on its data directory keeps the tree, the sequence counters and the sessions."""
    a = t.raw("a")
    t.step("create /r", lambda: a.create("/r", b"before"))
    t.step("set /r", lambda: a.set_data("/r", b"changed"))
    t.step("ephemeral /r/e", lambda: a.create("/r/e", b"eph", flags=1))
    t.step("sequential /r/s-", lambda: a.create("/r/s-", flags=2))
    t.step("acl node", lambda: a.create("/r/ro", b"r", acl=[(1, "world", "anyone")]))
    t.step("stat /r before restart", lambda: a.exists("/r"))
    session, password, last_zxid = a.session_id, a.password, a.last_zxid
    t.restart_server()
    b = t.raw("b")
    t.step("get /r after restart", lambda: b.get_data("/r"))
    t.step("children /r after restart", lambda: b.get_children("/r"))
    t.step("ephemeral kept while its session lives", lambda: b.exists("/r/e"))
    t.step("acl kept", lambda: b.get_acl("/r/ro"))
    t.step("sequence counter kept", lambda: b.create("/r/s-", flags=2))
    t.step("stat /r after restart", lambda: b.exists("/r"))
    t.step("resume the old session", lambda: _handshake(
        t, session_id=session, password=password, last_zxid=last_zxid))
    resumed = rawzk.RawClient(t.server.host, t.server.port)
    t.step("resume and close the old session", lambda: _resume_and_close(
        resumed, session, password, last_zxid))
    t.step("ephemeral gone with its session", lambda: b.exists("/r/e"))
    time.sleep(2 * 4.0 + 1.0)  # two session timeouts (20 ticks of 200 ms each)
    t.step("ephemeral after two session timeouts", lambda: b.exists("/r/e"))
    t.step("children /r at end", lambda: b.get_children("/r"))


def _resume_and_close(client, session, password, last_zxid):
    try:
        client.connect(session_id=session, password=password, last_zxid=last_zxid)
    except rawzk.Closed:
        return "connection closed"
    if client.negotiated_timeout_ms <= 0:
        client.drop()
        return "session expired"
    client.close()
    return "closed"


SCENARIOS = [
    (function.__name__, function)
    for function in (
        initial_tree,
        create_modes,
        create_errors,
        delete_versions,
        set_data_versions,
        acl_versions,
        acl_digest,
        paths_kazoo,
        paths_raw,
        multi_failures,
        multi_success,
        sequential_numbering,
        child_stats,
        watches_two_sessions,
        ephemeral_close_fires,
        reads_and_sync,
        large_data,
        container_and_ttl,
        who_am_i_and_auth,
        counts_and_ephemerals,
        add_watch_modes,
        check_remove_watches,
        unknown_and_odd_requests,
        session_handshake,
        restart_keeps_state,
    )
]
