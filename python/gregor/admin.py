"""CreateTopics over the Kafka protocol: the one admin call the fixtures make, written here so
that the package needs no Kafka client library (tests bring their own, at any version)."""

from __future__ import annotations

import socket
import struct

CREATE_TOPICS = 19
# v4 is the oldest that takes replication factor -1 (the broker's default, KIP-464); Kafka 4 and
# Gregor serve v2-v7, and v4 is the last before the flexible encoding.
CREATE_TOPICS_VERSION = 4
CLIENT_ID = "gregor-python"
ERRORS = {36: "TOPIC_ALREADY_EXISTS", 37: "INVALID_PARTITIONS", 38: "INVALID_REPLICATION_FACTOR",
          40: "INVALID_CONFIG", 41: "NOT_CONTROLLER", 17: "INVALID_TOPIC_EXCEPTION"}


class TopicError(RuntimeError):
    """The broker refused the topic: ``code`` is Kafka's error code."""

    def __init__(self, name: str, code: int, message: str | None):
        self.code = code
        super().__init__(f"cannot create topic {name!r}: {ERRORS.get(code, 'error')} ({code})"
                         + (f": {message}" if message else ""))


def _string(s: str) -> bytes:
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def call(bootstrap: str, api_key: int, version: int, body: bytes, timeout: float = 10.0) -> bytes:
    """Sends one request (header v1: no tagged fields) to the first broker of ``bootstrap``
    (``host:port[,...]``); returns the response after its correlation id."""
    host, port = bootstrap.split(",")[0].strip().rsplit(":", 1)
    request = struct.pack(">hhi", api_key, version, 1) + _string(CLIENT_ID) + body
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        return _recv_exactly(sock, size)[4:]


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None,
                 timeout: float = 10.0) -> None:
    """Creates topic ``name`` through the first broker of ``bootstrap``, replicated as the
    broker's default.replication.factor says, with topic ``config`` (e.g.
    ``{"cleanup.policy": "compact"}``). Raises TopicError when the broker refuses it."""
    configs = [_string(k) + _string(str(v)) for k, v in (config or {}).items()]
    body = b"".join([
        # One topic: name, partitions, replication factor, no replica assignment, configs.
        struct.pack(">i", 1), _string(name), struct.pack(">ihi", partitions, -1, 0),
        struct.pack(">i", len(configs)), *configs,
        # The broker's own wait, and validate_only false.
        struct.pack(">i?", int(timeout * 1000), False),
    ])
    response = call(bootstrap, CREATE_TOPICS, CREATE_TOPICS_VERSION, body, timeout)
    # Throttle time, topic count, then the one topic's name, error code and message.
    offset = 8
    (name_len,) = struct.unpack_from(">h", response, offset)
    offset += 2 + name_len
    code, message_len = struct.unpack_from(">hh", response, offset)
    if code:
        message = response[offset + 4:offset + 4 + message_len].decode() if message_len >= 0 else None
        raise TopicError(name, code, message)
