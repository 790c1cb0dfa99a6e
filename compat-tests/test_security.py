"""TLS and SASL listeners against real clients.

One broker serves five listeners from a server.properties file: PLAINTEXT first (admin and
SCRAM user management), SSL, MTLS (SSL with ``ssl.client.auth=required``), SASL_PLAINTEXT
(PLAIN with JAAS users, SCRAM-SHA-256 and SCRAM-SHA-512) and SASL_SSL (SCRAM). The
certificates come from ``gregor certs``; SCRAM users are made with the real ``kafka-configs``
of Kafka 4.1 and must survive a broker restart.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from conftest import (
    JAVA,
    certificate_principal,
    ck_consumer,
    ck_drain,
    ck_producer,
    kafka_tool,
    kp_consumer,
    kp_create_topic,
    kp_drain,
    kp_producer,
    log_since,
    refused_start,
    secure_addr,
    unique_topic,
    wait_for_login_logged,
    wait_until,
)

SCRAM_PASSWORD = "alice-secret"


def kp_round_trip(b, listener, **security):
    topic = unique_topic(f"sec-kp-{listener.lower()}")
    kp_create_topic(b.bootstrap, topic, 1)
    producer = kp_producer(secure_addr(b, listener), **security)
    try:
        for i in range(5):
            producer.send(topic, f"m{i}".encode())
        producer.flush(timeout=20)
    finally:
        producer.close(timeout=5)
    consumer = kp_consumer(secure_addr(b, listener), auto_offset_reset="earliest", **security)
    try:
        consumer.subscribe([topic])
        assert [r.value for r in kp_drain(consumer, 5)] == [f"m{i}".encode() for i in range(5)]
    finally:
        consumer.close()


def ck_round_trip(b, listener, **security):
    from confluent_kafka import TopicPartition

    topic = unique_topic(f"sec-ck-{listener.lower()}")
    kp_create_topic(b.bootstrap, topic, 1)
    producer = ck_producer(secure_addr(b, listener), **security)
    for i in range(5):
        producer.produce(topic, f"m{i}".encode())
    assert producer.flush(20) == 0
    consumer = ck_consumer(secure_addr(b, listener), **{"auto.offset.reset": "earliest"}, **security)
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert [m.value() for m in ck_drain(consumer, 5)] == [f"m{i}".encode() for i in range(5)]
    finally:
        consumer.close()


def ck_errors(b, listener, **security):
    """The errors librdkafka reports while trying to fetch metadata through ``listener``."""
    from confluent_kafka.admin import AdminClient

    errors = []
    admin = AdminClient({"bootstrap.servers": secure_addr(b, listener), "error_cb": errors.append, **security})
    with pytest.raises(Exception):
        admin.list_topics(timeout=5)
    admin.poll(0.5)
    return errors


def test_ssl_with_kafka_python_and_confluent_kafka(secured, certs):
    kp_round_trip(secured, "SSL", security_protocol="SSL", ssl_cafile=certs["ca"])
    ck_round_trip(secured, "SSL", **{"security.protocol": "SSL", "ssl.ca.location": certs["ca"]})


def test_plaintext_client_on_a_tls_listener_is_cut_off_and_others_are_served(secured, certs):
    with socket.create_connection(("127.0.0.1", secured.ports["SSL"]), timeout=10) as s:
        s.sendall(b"\x00\x00\x00\x10garbage-not-tls!")
        # At most a TLS alert comes back before the broker closes the connection.
        while s.recv(100):
            pass
    wait_until(lambda: "TLS handshake failed" in open(secured.log_path).read(), timeout=10, message="the logged reason")
    kp_round_trip(secured, "SSL", security_protocol="SSL", ssl_cafile=certs["ca"])


def test_mutual_tls_with_confluent_kafka(secured, certs):
    client_cert = {"security.protocol": "SSL", "ssl.ca.location": certs["ca"],
                   "ssl.certificate.location": certs["client_cert"], "ssl.key.location": certs["client_key"]}
    ck_round_trip(secured, "MTLS", **client_cert)
    principal = certificate_principal(certs["client_cert"])
    wait_until(lambda: principal in open(secured.log_path).read(), timeout=10,
               message="the principal of the client certificate")
    # Without a certificate the handshake fails.
    errors = ck_errors(secured, "MTLS", **{"security.protocol": "SSL", "ssl.ca.location": certs["ca"]})
    assert errors, "a client without a certificate got in"


def test_mutual_tls_with_kafka_python(secured, certs, caplog):
    """kafka-python with the client's certificate and key (ssl_certfile, ssl_keyfile) produces
    and consumes through the listener with ssl.client.auth=required, and the broker logs the
    certificate's principal; without them the broker ends the handshake (TLS 1.3's
    certificate_required alert, which kafka-python logs) and kafka-python cannot bootstrap."""
    from kafka.errors import KafkaTimeoutError

    logged_from = os.path.getsize(secured.log_path)
    kp_round_trip(secured, "MTLS", security_protocol="SSL", ssl_cafile=certs["ca"],
                  ssl_certfile=certs["client_cert"], ssl_keyfile=certs["client_key"])
    wait_for_login_logged(secured, logged_from, certs, "MTLS", None)

    logged_from = os.path.getsize(secured.log_path)
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        kp_producer(secure_addr(secured, "MTLS"), security_protocol="SSL", ssl_cafile=certs["ca"],
                    bootstrap_timeout_ms=3000).close(timeout=5)
    assert "alert certificate required" in caplog.text, caplog.text
    assert "TLS handshake failed: peer sent no certificates" in log_since(secured, logged_from)


def sasl_kp(mechanism, user, password, protocol="SASL_PLAINTEXT", **more):
    return dict(security_protocol=protocol, sasl_mechanism=mechanism, sasl_plain_username=user,
                sasl_plain_password=password, **more)


def sasl_ck(mechanism, user, password, protocol="SASL_PLAINTEXT", **more):
    return {"security.protocol": protocol, "sasl.mechanism": mechanism, "sasl.username": user,
            "sasl.password": password, **more}


def test_sasl_plain_with_kafka_python_and_confluent_kafka(secured):
    kp_round_trip(secured, "SASL_PLAINTEXT", **sasl_kp("PLAIN", "carol", "carol-secret"))
    ck_round_trip(secured, "SASL_PLAINTEXT", **sasl_ck("PLAIN", "admin", "admin-secret"))
    assert "authenticated as User:carol" in open(secured.log_path).read()


def test_wrong_password_is_an_authentication_error_in_the_client(secured):
    from confluent_kafka import KafkaError

    errors = ck_errors(secured, "SASL_PLAINTEXT", **sasl_ck("PLAIN", "carol", "wrong"))
    assert any(e.code() == KafkaError._AUTHENTICATION and "Invalid username or password" in e.str() for e in errors), errors
    log = open(secured.log_path).read()
    assert "SASL authentication failed" in log and "wrong" not in log.split("SASL authentication failed", 1)[1].split("\n")[0]


def test_a_request_before_authentication_closes_the_connection(secured):
    def frame(api_key, version, body):
        header = struct.pack(">hhih", api_key, version, 7, 4) + b"test"
        return struct.pack(">i", len(header) + len(body)) + header + body

    with socket.create_connection(("127.0.0.1", secured.ports["SASL_PLAINTEXT"]), timeout=10) as s:
        # ApiVersions v0 is answered before authentication...
        s.sendall(frame(18, 0, b""))
        size = struct.unpack(">i", s.recv(4))[0]
        assert size > 0
        # ...Metadata v1 (all topics) is not: the connection is closed.
        s.sendall(frame(3, 1, struct.pack(">i", -1)))
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert len(data) <= size, "a Metadata answer came before authentication"
    assert "unexpected Metadata request during SASL authentication" in open(secured.log_path).read()


def kafka_configs(tools_classpath, b, *args):
    return kafka_tool(tools_classpath, "kafka.admin.ConfigCommand", b.bootstrap, "--entity-type", "users", *args)


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_scram_users_from_kafka_configs_survive_a_restart(secured, certs, tools_classpath):
    code, out, err = kafka_configs(tools_classpath, secured, "--entity-name", "alice", "--alter", "--add-config",
                                   f"SCRAM-SHA-256=[iterations=8192,password={SCRAM_PASSWORD}],SCRAM-SHA-512=[password={SCRAM_PASSWORD}]")
    assert code == 0, err
    assert "Completed updating config for user alice." in out
    code, out, err = kafka_configs(tools_classpath, secured, "--entity-name", "alice", "--describe")
    assert code == 0, err
    assert "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096" in out, out

    def scram_works():
        kp_round_trip(secured, "SASL_PLAINTEXT", **sasl_kp("SCRAM-SHA-256", "alice", SCRAM_PASSWORD))
        ck_round_trip(secured, "SASL_PLAINTEXT", **sasl_ck("SCRAM-SHA-512", "alice", SCRAM_PASSWORD))
        ck_round_trip(secured, "SASL_SSL", **sasl_ck("SCRAM-SHA-256", "alice", SCRAM_PASSWORD, "SASL_SSL", **{"ssl.ca.location": certs["ca"]}))
        kp_round_trip(secured, "SASL_SSL", **sasl_kp("SCRAM-SHA-512", "alice", SCRAM_PASSWORD, "SASL_SSL", ssl_cafile=certs["ca"]))

    scram_works()
    from confluent_kafka import KafkaError

    errors = ck_errors(secured, "SASL_PLAINTEXT", **sasl_ck("SCRAM-SHA-256", "alice", "not-her-password"))
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors

    secured.restart()
    scram_works()

    code, out, err = kafka_configs(tools_classpath, secured, "--entity-name", "alice", "--alter", "--delete-config", "SCRAM-SHA-512")
    assert code == 0, err
    errors = ck_errors(secured, "SASL_PLAINTEXT", **sasl_ck("SCRAM-SHA-512", "alice", SCRAM_PASSWORD))
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_bad_security_settings_refuse_the_start(certs):
    for props, expected in (
        ("ssl.keystore.type=PKCS12\nssl.keystore.location=/nonexistent.p12\n", "reads PEM only"),
        ("ssl.keystore.location=/nonexistent/broker.pem\n", "ssl.keystore.location: cannot read /nonexistent/broker.pem"),
    ):
        stderr = refused_start(props, "SSL")
        assert expected in stderr, stderr
