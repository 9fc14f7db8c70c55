#!/usr/bin/env python3
"""Writes the wire seed corpora of the libFuzzer targets from the golden frames of the tests.

Fuzz/corpus/<target>/<name> for connect, request, connect-response, reply, frames and
client-session (from Tests/ZKProtocolTests/CapturedTrafficTests.swift and GoldenBytesTests.swift),
zoocfg and jaas (the texts of the server tests) and sasl (a DIGEST-MD5 response of the SASL
tests). The peer, transaction and snapshot seeds are written by the fuzz binary itself
(MINIZK_FUZZ_WRITE_SEEDS, see scripts/fuzz-libfuzzer.sh) since their golden values are built by
the encoders. Run from the repository root; the output is deterministic.
"""
import hashlib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Fuzz", "corpus")


def write(target, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def unhex(text):
    return bytes.fromhex(re.sub(r"[^0-9a-fA-F]", "", text))


def swift_strings(text):
    # "..." literals on one line (hex frames) and """ ... """ blocks.
    return re.findall(r'"((?:[0-9a-f]{2}|[ |\\\n])+)"', text)


def main():
    captured = open(os.path.join(ROOT, "Tests/ZKProtocolTests/CapturedTrafficTests.swift")).read()
    exchanges = re.findall(r'Exchange\("([^"]*)",\s*"([0-9a-f]*)",\s*\[([^\]]*)\]\)', captured)
    connections = []
    for label, request, replies in exchanges:
        reply_frames = [unhex(r) for r in re.findall(r'"([0-9a-f]*)"', replies)]
        if label == "connect":
            connections.append(([], []))
        req = unhex(request)
        if connections:
            connections[-1][0].append(req)
            connections[-1][1].extend(reply_frames)
        if label == "connect":
            write("connect", req[4:])
            for r in reply_frames:
                write("connect-response", r[4:])
            continue
        write("request", req[4:])
        opcode = req[8:12]
        for r in reply_frames:
            write("reply", opcode + r[4:])
    for requests, replies in connections:
        write("frames", b"\x05" + b"".join(requests))
        write("client-session", b"\x00" + b"".join(replies))
        write("client-session", b"\x01" + b"".join(replies[:3]))

    golden = open(os.path.join(ROOT, "Tests/ZKProtocolTests/GoldenBytesTests.swift")).read()
    for literal in re.findall(r'"""\n(.*?)"""', golden, re.S) + re.findall(r'"([0-9a-f |]{16,})"', golden):
        cleaned = re.sub(r"[\s|\\]", "", literal)
        if not re.fullmatch(r"([0-9a-f]{2})+", cleaned) or len(cleaned) < 16:
            continue
        frame = bytes.fromhex(cleaned)
        if len(frame) < 8:
            continue
        write("frames", b"\x03" + frame)
        write("request", frame[4:])
        write("reply", b"\x00\x00\x00\x04" + frame[4:])

    for path, target in [
        ("Tests/ZKServerTests/ZooConfigTests.swift", "zoocfg"),
        ("Tests/ZKServerTests/JAASConfigTests.swift", "jaas"),
    ]:
        text = open(os.path.join(ROOT, path)).read()
        for block in re.findall(r'"""\n(.*?)\n\s*"""', text, re.S):
            lines = block.split("\n")
            indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
            write(target, "\n".join(l[indent:] for l in lines).encode() + b"\n")

    write("sasl", b'charset=utf-8,username="alice",realm="zk-sasl-md5",nonce="MDEyMzQ1Njc4OWFiY2RlZg==",'
          b'nc=00000001,cnonce="clientnonce456",digest-uri="zookeeper/zk-sasl-md5",maxbuf=65536,'
          b'response=d88e62fd08709a033904176a95d5f0d8,qop=auth')
    write("sasl", b"")


if __name__ == "__main__":
    sys.exit(main())
