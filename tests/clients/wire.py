"""Hand-rolled Kafka wire helpers for tests that must send bytes no client library would send.

Only what the tests need: request framing, ApiVersions, Metadata v4 (topic auto-creation),
Produce v3 with a record batch v2 written byte by byte (so a test can corrupt its CRC), Produce
v9+ in the flexible encoding (for KIP-951's leader hints, in tagged fields), and the parsers for
their responses. Independent of every client library on purpose.
"""

from __future__ import annotations

import socket
import struct

API_PRODUCE = 0
API_METADATA = 3
API_API_VERSIONS = 18

# --- CRC-32C (Castagnoli), table-driven -------------------------------------------------------

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# --- primitives --------------------------------------------------------------------------------

def string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def varint(n: int) -> bytes:
    """Zig-zag varint, as used inside v2 records."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        if z & ~0x7F:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        else:
            out.append(z)
            return bytes(out)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def header_v1(api_key: int, version: int, correlation_id: int, client_id: str = "fjord-wire") -> bytes:
    return struct.pack(">hhi", api_key, version, correlation_id) + string(client_id)


def header_v2(api_key: int, version: int, correlation_id: int, client_id: str = "fjord-wire") -> bytes:
    return header_v1(api_key, version, correlation_id, client_id) + b"\x00"  # no tagged fields


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), f"short response: need {n} at {self.pos} of {len(self.data)}"
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int: return struct.unpack(">b", self.take(1))[0]
    def i16(self) -> int: return struct.unpack(">h", self.take(2))[0]
    def i32(self) -> int: return struct.unpack(">i", self.take(4))[0]
    def i64(self) -> int: return struct.unpack(">q", self.take(8))[0]

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def remaining(self) -> int:
        return len(self.data) - self.pos


def api_versions_v0_request(correlation_id: int = 1) -> bytes:
    """A complete ApiVersions v0 request frame (header v1: key, version, correlation id, client id)."""
    client_id = b"fjord-probe"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    assert 0 <= size < 64 << 20, f"implausible response size {size}"
    return recv_exact(sock, size)


# --- connections ---------------------------------------------------------------------------------

def connect(bootstrap: str, timeout: float = 10.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request(sock: socket.socket, payload: bytes) -> bytes:
    """Send one framed request; return the response frame (without its size prefix)."""
    sock.sendall(frame(payload))
    return recv_frame(sock)


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True if the peer closes (EOF or reset) within `within` seconds without sending a response."""
    sock.settimeout(within)
    try:
        data = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    if data:
        raise AssertionError(f"expected the connection to be closed, got {len(data)} bytes: {data[:64]!r}")
    return True


# --- ApiVersions -------------------------------------------------------------------------------

def api_versions_request(version: int, correlation_id: int) -> bytes:
    """ApiVersions at any version. v3+ (and unknown versions) use header v2 and the v3 body."""
    if version >= 3:
        body = uvarint(len(b"fjord-tests") + 1) + b"fjord-tests" + uvarint(len(b"1.0") + 1) + b"1.0" + b"\x00"
        return header_v2(API_API_VERSIONS, version, correlation_id) + body
    return header_v1(API_API_VERSIONS, version, correlation_id)


def parse_api_versions_v0(resp: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """(correlation id, error code, {api key: (min, max)}) of a v0 ApiVersions response."""
    r = Reader(resp)
    corr = r.i32()
    err = r.i16()
    n = r.i32()
    assert 0 <= n < 1000, f"implausible api count {n}"
    apis = {}
    for _ in range(n):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        apis[key] = (lo, hi)
    return corr, err, apis


# --- Metadata v4 (allow_auto_topic_creation) ---------------------------------------------------

def metadata_v4(sock: socket.socket, topics: list[str], correlation_id: int, auto_create: bool = True) -> dict:
    body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics) + struct.pack(">b", int(auto_create))
    r = Reader(request(sock, header_v1(API_METADATA, 4, correlation_id) + body))
    assert r.i32() == correlation_id
    r.i32()  # throttle
    brokers = [(r.i32(), r.string(), r.i32(), r.string()) for _ in range(r.i32())]
    r.string()  # cluster id
    r.i32()  # controller id
    out = {"brokers": brokers, "topics": {}}
    for _ in range(r.i32()):
        err, name, _internal = r.i16(), r.string(), r.i8()
        parts = {}
        for _ in range(r.i32()):
            # v4 partitions: no leader epoch (v7+), no offline replicas (v5+)
            perr, idx, leader = r.i16(), r.i32(), r.i32()
            [r.i32() for _ in range(r.i32())]  # replicas
            [r.i32() for _ in range(r.i32())]  # isr
            parts[idx] = (perr, leader)
        out["topics"][name] = (err, parts)
    assert r.remaining() == 0, f"{r.remaining()} bytes left over in a Metadata v4 response"
    return out


# --- record batch v2 + Produce v3 --------------------------------------------------------------

def record_batch(records: list[tuple[bytes | None, bytes | None]], base_timestamp: int,
                 producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
                 corrupt_crc: bool = False) -> bytes:
    """An uncompressed magic-2 batch of (key, value) records, timestamps base_timestamp + i."""
    recs = b""
    for i, (key, value) in enumerate(records):
        body = b"\x00"  # attributes
        body += varint(i)  # timestamp delta
        body += varint(i)  # offset delta
        body += varint(-1) if key is None else varint(len(key)) + key
        body += varint(-1) if value is None else varint(len(value)) + value
        body += varint(0)  # headers
        recs += varint(len(body)) + body
    n = len(records)
    after_crc = struct.pack(">hiqqqhi", 0, n - 1, base_timestamp, base_timestamp + n - 1,
                            producer_id, producer_epoch, base_sequence)
    after_crc += struct.pack(">i", n) + recs
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    # base offset, batch length, partition leader epoch, magic, crc
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


def produce_v3(topic: str, partition: int, records: bytes, correlation_id: int, acks: int = -1,
               timeout_ms: int = 10_000) -> bytes:
    body = string(None) + struct.pack(">hi", acks, timeout_ms)
    body += struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + struct.pack(">i", len(records)) + records
    return header_v1(API_PRODUCE, 3, correlation_id) + body


def parse_produce_v3(resp: bytes) -> tuple[int, dict[tuple[str, int], tuple[int, int]]]:
    """(correlation id, {(topic, partition): (error code, base offset)})."""
    r = Reader(resp)
    corr = r.i32()
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            idx, err, base, _log_append_time = r.i32(), r.i16(), r.i64(), r.i64()
            out[(name, idx)] = (err, base)
    r.i32()  # throttle
    return corr, out


__all__ = [name for name in dir() if not name.startswith("_")]


# --- InitProducerId (idempotent producer without transactions) -----------------------------------

API_INIT_PRODUCER_ID = 22


def supported_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    corr, err, apis = parse_api_versions_v0(request(sock, api_versions_request(0, 90)))
    assert (corr, err) == (90, 0)
    return apis


def init_producer_id(sock: socket.socket, correlation_id: int) -> tuple[int, int]:
    """(producer id, epoch) for a non-transactional producer, at the lowest version the broker
    takes (v0/v1 plain, v2+ flexible)."""
    lo, hi = supported_versions(sock)[API_INIT_PRODUCER_ID]
    version = lo
    if version <= 1:
        payload = header_v1(API_INIT_PRODUCER_ID, version, correlation_id) + string(None) + struct.pack(">i", 60_000)
    else:
        body = uvarint(0) + struct.pack(">i", 60_000)  # compact nullable string: null
        if version >= 3:
            body += struct.pack(">qh", -1, -1)
        body += b"\x00"
        payload = header_v2(API_INIT_PRODUCER_ID, version, correlation_id) + body
    r = Reader(request(sock, payload))
    assert r.i32() == correlation_id
    if version >= 2:
        assert r.take(1) == b"\x00"  # response header v1: no tagged fields
    r.i32()  # throttle
    err = r.i16()
    assert err == 0, f"InitProducerId v{version}: error {err}"
    pid, epoch = r.i64(), r.i16()
    return pid, epoch


# --- flexible versions (compact lengths, tagged fields) -------------------------------------------

def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def compact_bytes(b: bytes) -> bytes:
    return uvarint(len(b) + 1) + b


def _read_uvarint(r: Reader) -> int:
    value, shift = 0, 0
    while True:
        (byte,) = r.take(1)
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


def _read_compact_string(r: Reader) -> str | None:
    n = _read_uvarint(r)
    return None if n == 0 else r.take(n - 1).decode()


def _read_tagged_fields(r: Reader) -> dict[int, bytes]:
    return {_read_uvarint(r): r.take(_read_uvarint(r)) for _ in range(_read_uvarint(r))}


# --- Produce v9+ (flexible; v10+ carries KIP-951's leader hints in tagged fields) -----------------

def produce_flexible(version: int, topic: str, partitions: list[int], records: bytes, correlation_id: int,
                     acks: int = 1, timeout_ms: int = 10_000) -> bytes:
    """A Produce request (v9-v12: topics by name) writing `records` to each of `partitions`."""
    assert 9 <= version <= 12
    body = uvarint(0) + struct.pack(">hi", acks, timeout_ms)  # null transactional id
    body += uvarint(2) + compact_string(topic) + uvarint(len(partitions) + 1)
    for p in partitions:
        body += struct.pack(">i", p) + compact_bytes(records) + uvarint(0)
    body += uvarint(0) + uvarint(0)  # the topic's and the request's tagged fields
    return header_v2(API_PRODUCE, version, correlation_id) + body


def parse_produce_flexible(resp: bytes) -> tuple[int, dict[tuple[str, int], dict], list[dict]]:
    """(correlation id, {(topic, partition): {error, base_offset, current_leader}}, node_endpoints)
    of a Produce v9+ response. `current_leader` is (leader id, leader epoch) or None when the
    tagged field is absent; node endpoints are {node_id, host, port, rack}."""
    r = Reader(resp)
    corr = r.i32()
    _read_tagged_fields(r)  # response header v1
    out = {}
    for _ in range(_read_uvarint(r) - 1):
        name = _read_compact_string(r)
        for _ in range(_read_uvarint(r) - 1):
            idx, err, base, _append_time, _log_start = r.i32(), r.i16(), r.i64(), r.i64(), r.i64()
            for _ in range(_read_uvarint(r) - 1):  # record errors
                r.i32()
                _read_compact_string(r)
                _read_tagged_fields(r)
            _read_compact_string(r)  # error message
            tags = _read_tagged_fields(r)
            leader = None
            if 0 in tags:
                lr = Reader(tags[0])
                leader = (lr.i32(), lr.i32())
            out[(name, idx)] = {"error": err, "base_offset": base, "current_leader": leader}
        _read_tagged_fields(r)
    r.i32()  # throttle
    tags = _read_tagged_fields(r)
    endpoints = []
    if 0 in tags:
        er = Reader(tags[0])
        for _ in range(_read_uvarint(er) - 1):
            node, host, port, rack = er.i32(), _read_compact_string(er), er.i32(), _read_compact_string(er)
            _read_tagged_fields(er)
            endpoints.append({"node_id": node, "host": host, "port": port, "rack": rack})
    assert r.remaining() == 0, f"{r.remaining()} bytes left over in a Produce response"
    return corr, out, endpoints
