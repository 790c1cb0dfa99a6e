"""Hostile input on the TLS and SASL listeners, with hand-built frames on plain sockets.

Garbage before and during the TLS handshake, requests before authentication, SASL requests
out of order, oversized tokens, malformed SCRAM messages and a flood of failed logins: each
bad connection is answered with a Kafka error and closed (or just closed), the broker keeps
running, keeps serving well-behaved clients, and gives back the file descriptors the bad
connections took.

Every bad connection comes from its own loopback address (127.0.x.y): the broker slows down
the failed logins of one address, and the test wants their answers, not that delay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import socket
import ssl
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (SCRAM_PASSWORD, SCRAM_USER, kp_create_topic, kp_producer, recv_exactly, secure_addr,
                      unique_topic, wait_until)

SOCKET_TIMEOUT_S = 10
ILLEGAL_SASL_STATE = 34
SASL_AUTHENTICATION_FAILED = 58

_sources = itertools.count(2)


def fresh_source() -> str:
    """A loopback address no other connection of this module used."""
    n = next(_sources)
    return f"127.0.{n // 250 + 1}.{n % 250 + 1}"


def connect(b, listener, certs=None) -> socket.socket:
    """A socket to ``listener`` from a fresh loopback address; TLS (trusting the dev CA) if
    ``certs`` is given."""
    sock = socket.create_connection(("127.0.0.1", b.ports[listener]), timeout=SOCKET_TIMEOUT_S,
                                    source_address=(fresh_source(), 0))
    if certs is None:
        return sock
    return ssl.create_default_context(cafile=certs["ca"]).wrap_socket(sock, server_hostname="127.0.0.1")


def request(api_key: int, version: int, body: bytes, correlation_id: int = 1) -> bytes:
    """A size-prefixed request with a v1 header (non-flexible versions only)."""
    client_id = b"hostile"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(header) + len(body)) + header + body


def read_response(sock) -> bytes:
    """One response frame, without its size and correlation id."""
    (size,) = struct.unpack(">i", recv_exactly(sock, 4))
    return recv_exactly(sock, size)[4:]


def is_closed(sock, timeout=SOCKET_TIMEOUT_S) -> bool:
    """True if the broker closes the connection within ``timeout`` (whatever it sent first)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    except socket.timeout:
        return False
    return True


def string(s: str) -> bytes:
    return struct.pack(">h", len(s)) + s.encode()


def sasl_handshake(sock, mechanism) -> int:
    """SaslHandshake v1; its error code."""
    sock.sendall(request(17, 1, string(mechanism)))
    (error,) = struct.unpack(">h", read_response(sock)[:2])
    return error


def sasl_authenticate(sock, token: bytes) -> tuple[int, str | None, bytes]:
    """SaslAuthenticate v0: (error code, error message, server token)."""
    sock.sendall(request(36, 0, struct.pack(">i", len(token)) + token))
    body = read_response(sock)
    error, message_len = struct.unpack(">hh", body[:4])
    message = body[4:4 + message_len].decode() if message_len >= 0 else None
    rest = body[4 + max(message_len, 0):]
    (token_len,) = struct.unpack(">i", rest[:4])
    return error, message, rest[4:4 + token_len]


METADATA_ALL_TOPICS = request(3, 1, struct.pack(">i", -1))
PRODUCE_V3 = request(0, 3, struct.pack(">hhii", -1, 1, 5000, 0))  # no transactional id, acks 1, no topics


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 5802), to send messages a real client would
    not."""

    def __init__(self, user, password, nonce="hostile-client-nonce"):
        self.user, self.password, self.nonce = user, password, nonce
        self.first_bare = f"n={user},r={nonce}"

    def first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def final(self, server_first: bytes, nonce=None, channel_binding="biws") -> bytes:
        fields = dict(f.split("=", 1) for f in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        without_proof = f"c={channel_binding},r={nonce or fields['r']}"
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def broker_fds(b) -> int:
    return len(os.listdir(f"/proc/{b.proc.pid}/fd"))


def broker_rss_kib(b) -> int:
    with open(f"/proc/{b.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def assert_healthy(b):
    assert b.is_running(), b.log_tail()
    assert "panicked" not in open(b.log_path).read(), b.log_tail()


# ---------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------


def client_hello(certs) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO, bytes]:
    """A TLS client in memory and its first flight (the ClientHello)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context(cafile=certs["ca"]).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return tls, incoming, outgoing, outgoing.read()


def test_garbage_before_and_during_the_tls_handshake_closes_only_that_connection(secured, certs):
    fds = broker_fds(secured)
    hello = client_hello(certs)[3]
    for listener in ("SSL", "SASL_SSL", "MTLS"):
        for garbage in (os.urandom(4096),
                        b"\x16\x03\x01\xff\xff" + os.urandom(100),  # a handshake record longer than TLS allows
                        hello[:40] + os.urandom(len(hello) - 40),  # a ClientHello gone bad half-way
                        METADATA_ALL_TOPICS):  # Kafka without TLS
            with connect(secured, listener) as sock:
                sock.sendall(garbage)
                assert is_closed(sock), (listener, garbage[:16])

        # A real ClientHello, the broker's answer, then garbage instead of the client's Finished.
        tls, incoming, outgoing, hello = client_hello(certs)
        with connect(secured, listener) as sock:
            sock.sendall(hello)
            incoming.write(sock.recv(65536))
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            sock.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))
            assert is_closed(sock), listener

    assert "TLS handshake failed" in open(secured.log_path).read()
    wait_until(lambda: broker_fds(secured) <= fds, timeout=10, message=f"the broker's FDs back to {fds}")
    # Well-behaved TLS clients are served as before.
    with connect(secured, "SSL", certs) as sock:
        sock.sendall(request(18, 0, b""))
        (error,) = struct.unpack(">h", read_response(sock)[:2])
        assert error == 0
    assert_healthy(secured)


def test_stalled_tls_handshakes_hold_up_no_one(secured, certs):
    """Half-sent ClientHellos on many connections: the broker goes on accepting and serving."""
    hello = client_hello(certs)[3]
    stalled = [connect(secured, "SSL") for _ in range(100)]
    try:
        for sock in stalled:
            sock.sendall(hello[:len(hello) // 2])
        with connect(secured, "SSL", certs) as sock:
            sock.sendall(request(18, 0, b""))
            assert struct.unpack(">h", read_response(sock)[:2]) == (0,)
    finally:
        for sock in stalled:
            sock.close()
    assert_healthy(secured)


# ---------------------------------------------------------------------------
# SASL out of order
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_requests_before_authentication_are_cut_off(secured_with_scram_user, certs, listener):
    b = secured_with_scram_user
    tls = certs if listener == "SASL_SSL" else None
    for before in (METADATA_ALL_TOPICS, PRODUCE_V3):
        with connect(b, listener, tls) as sock:
            sock.sendall(before)
            assert is_closed(sock), before
        # ...also after a handshake, in place of the token.
        with connect(b, listener, tls) as sock:
            assert sasl_handshake(sock, "SCRAM-SHA-256") == 0
            sock.sendall(before)
            assert is_closed(sock), before

    # SaslAuthenticate before SaslHandshake.
    with connect(b, listener, tls) as sock:
        sock.sendall(request(36, 0, struct.pack(">i", 3) + b"abc"))
        assert is_closed(sock)
    # A second SaslHandshake in place of the first token.
    with connect(b, listener, tls) as sock:
        assert sasl_handshake(sock, "SCRAM-SHA-256") == 0
        sock.sendall(request(17, 1, string("SCRAM-SHA-256")))
        assert is_closed(sock)

    # After a real login: SaslAuthenticate out of an exchange is answered with
    # ILLEGAL_SASL_STATE and the connection goes on serving; a second SaslHandshake
    # re-authenticates (KIP-368), by the same mechanism only.
    with connect(b, listener, tls) as sock:
        def scram_login():
            scram = ScramClient(SCRAM_USER, SCRAM_PASSWORD)
            assert sasl_handshake(sock, "SCRAM-SHA-256") == 0
            error, _, server_first = sasl_authenticate(sock, scram.first())
            assert error == 0
            error, message, server_final = sasl_authenticate(sock, scram.final(server_first))
            assert error == 0 and server_final.startswith(b"v="), message
        scram_login()
        assert sasl_authenticate(sock, b"\0carol\0carol-secret")[0] == ILLEGAL_SASL_STATE
        scram_login()
        sock.sendall(METADATA_ALL_TOPICS)
        assert read_response(sock)
        assert sasl_handshake(sock, "SCRAM-SHA-512") == 0
        error, message, _ = sasl_authenticate(sock, ScramClient(SCRAM_USER, SCRAM_PASSWORD).first())
        assert error == SASL_AUTHENTICATION_FAILED and "re-authentication" in message, message
        assert is_closed(sock)
    log = open(b.log_path).read()
    assert "unexpected Metadata request during SASL authentication" in log
    assert "unexpected Produce request during SASL authentication" in log
    assert_healthy(b)


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_oversized_sasl_tokens_are_cut_off_without_being_read(secured_with_scram_user, certs, listener):
    b = secured_with_scram_user
    tls = certs if listener == "SASL_SSL" else None
    rss = broker_rss_kib(b)
    ten_mib = 10 << 20
    mechanisms = ("PLAIN", "SCRAM-SHA-512") if listener == "SASL_PLAINTEXT" else ("SCRAM-SHA-256", "SCRAM-SHA-512")
    # A 10 MiB frame declared, 64 bytes sent: closed at once, not after waiting for the rest.
    for mechanism in mechanisms:
        with connect(b, listener, tls) as sock:
            assert sasl_handshake(sock, mechanism) == 0
            t0 = time.monotonic()
            sock.sendall(struct.pack(">i", ten_mib) + b"\0" * 64)
            assert is_closed(sock) and time.monotonic() - t0 < 5
    # A small frame whose token claims 10 MiB: malformed.
    with connect(b, listener, tls) as sock:
        assert sasl_handshake(sock, mechanisms[0]) == 0
        sock.sendall(request(36, 0, struct.pack(">i", ten_mib) + b"\0carol\0carol-secret"))
        assert is_closed(sock)
    # A token just under the 512 KiB limit is read, and refused as a login.
    with connect(b, listener, tls) as sock:
        assert sasl_handshake(sock, mechanisms[0]) == 0
        error, message, _ = sasl_authenticate(sock, b"\0carol\0" + b"x" * (500 << 10))
        assert error == SASL_AUTHENTICATION_FAILED, message
        assert is_closed(sock)
    assert broker_rss_kib(b) < rss + 64 * 1024
    assert f"request size {ten_mib} is outside 0..={512 << 10}" in open(b.log_path).read()
    assert_healthy(b)


# ---------------------------------------------------------------------------
# Malformed SCRAM
# ---------------------------------------------------------------------------


def bad_scram_finals(server_first: bytes) -> dict[str, bytes]:
    scram = ScramClient(SCRAM_USER, SCRAM_PASSWORD)
    good = scram.final(server_first)
    return {
        "wrong nonce": scram.final(server_first, nonce="hostile-client-nonce-but-not-the-servers"),
        "client nonce only": scram.final(server_first, nonce="hostile-client-nonce"),
        "bad base64 proof": good.rsplit(b",p=", 1)[0] + b",p=!!not*base64!!",
        "short proof": good.rsplit(b",p=", 1)[0] + b",p=" + base64.b64encode(b"short"),
        "wrong channel binding": scram.final(server_first, channel_binding=base64.b64encode(b"y,,").decode()),
        "no proof": good.rsplit(b",p=", 1)[0],
        "garbage": b"\xff\xfe not even utf-8",
        "empty": b"",
    }


BAD_SCRAM_FIRSTS = {
    "garbage": b"garbage",
    "not utf-8": b"n,,n=\xff\xfe,r=abc",
    "no nonce": f"n,,n={SCRAM_USER}".encode(),
    "empty nonce": f"n,,n={SCRAM_USER},r=".encode(),
    "channel binding": f"p=tls-unique,,n={SCRAM_USER},r=abc".encode(),
    "mandatory extension": f"n,,n={SCRAM_USER},r=abc,m=ext".encode(),
    "other authzid": f"n,a=admin,n={SCRAM_USER},r=abc".encode(),
    "unknown user": b"n,,n=nobody,r=abc",
    "empty": b"",
    "huge user name": b"n,,n=" + b"u" * 100_000 + b",r=abc",
}


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_malformed_scram_messages_fail_the_login(secured_with_scram_user, certs, listener):
    b = secured_with_scram_user
    tls = certs if listener == "SASL_SSL" else None
    for what, first in BAD_SCRAM_FIRSTS.items():
        with connect(b, listener, tls) as sock:
            assert sasl_handshake(sock, "SCRAM-SHA-256") == 0
            error, message, _ = sasl_authenticate(sock, first)
            assert error == SASL_AUTHENTICATION_FAILED and message.startswith("Authentication failed"), (what, message)
            assert is_closed(sock), what
    probe = ScramClient(SCRAM_USER, SCRAM_PASSWORD)
    for what in bad_scram_finals(b"r=x,s=AAAA,i=4096"):
        with connect(b, listener, tls) as sock:
            assert sasl_handshake(sock, "SCRAM-SHA-256") == 0
            error, _, server_first = sasl_authenticate(sock, probe.first())
            assert error == 0 and server_first.startswith(b"r=hostile-client-nonce")
            final = bad_scram_finals(server_first)[what]
            error, message, _ = sasl_authenticate(sock, final)
            assert error == SASL_AUTHENTICATION_FAILED and message.startswith("Authentication failed"), (what, message)
            assert is_closed(sock), what
    assert_healthy(b)


# ---------------------------------------------------------------------------
# A flood of failed logins
# ---------------------------------------------------------------------------

FLOOD_LOGINS = 2000
FLOOD_THREADS = 48
FLOOD_DEADLINE_S = 45


def failed_login(b, n):
    """One failed login, PLAIN or SCRAM (a wrong password, so the whole exchange runs)."""
    with connect(b, "SASL_PLAINTEXT") as sock:
        if n % 2:
            assert sasl_handshake(sock, "PLAIN") == 0
            error, _, _ = sasl_authenticate(sock, f"\0carol\0guess-{n}".encode())
        else:
            scram = ScramClient(SCRAM_USER, f"guess-{n}", nonce=f"flood-{n}")
            assert sasl_handshake(sock, "SCRAM-SHA-256") == 0
            error, _, server_first = sasl_authenticate(sock, scram.first())
            assert error == 0
            error, _, _ = sasl_authenticate(sock, scram.final(server_first))
        assert error == SASL_AUTHENTICATION_FAILED
        assert is_closed(sock)


def test_a_flood_of_failed_logins_leaves_others_served_and_no_leak(secured_with_scram_user):
    b = secured_with_scram_user
    topic = unique_topic("flood")
    kp_create_topic(b.bootstrap, topic, 1)
    producer = kp_producer(secure_addr(b, "SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT",
                           sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=SCRAM_USER,
                           sasl_plain_password=SCRAM_PASSWORD)
    try:
        producer.send(topic, b"warm-up").get(timeout=20)
        fds, rss = broker_fds(b), broker_rss_kib(b)
        flooding = threading.Event()
        flooding.set()
        acked = []

        def produce_meanwhile():
            while flooding.is_set():
                t0 = time.monotonic()
                producer.send(topic, f"during-{len(acked)}".encode()).get(timeout=10)
                acked.append(time.monotonic() - t0)

        with ThreadPoolExecutor(1) as background:
            meanwhile = background.submit(produce_meanwhile)
            t0 = time.monotonic()
            try:
                with ThreadPoolExecutor(FLOOD_THREADS) as pool:
                    for done in pool.map(lambda n: failed_login(b, n), range(FLOOD_LOGINS), timeout=FLOOD_DEADLINE_S):
                        assert done is None
            finally:
                flooding.clear()
            flood_s = time.monotonic() - t0
            meanwhile.result(timeout=20)
        # The authenticated client went on producing throughout, each send promptly.
        assert len(acked) >= 20 and max(acked) < 5, (len(acked), max(acked, default=None), flood_s)
        print(f"[hostile] {FLOOD_LOGINS} failed logins in {flood_s:.1f}s; {len(acked)} sends meanwhile, "
              f"slowest {max(acked) * 1000:.0f} ms")
        wait_until(lambda: broker_fds(b) <= fds + 2, timeout=10,
                   message=lambda: f"the broker's FDs back to {fds} (now {broker_fds(b)})")
        assert broker_rss_kib(b) < rss + 64 * 1024, (rss, broker_rss_kib(b))
    finally:
        producer.close(timeout=5)
    assert open(b.log_path).read().count("SASL authentication failed") >= FLOOD_LOGINS
    assert_healthy(b)
