"""SASL re-authentication (KIP-368, ``connections.max.reauth.ms``) with a real client.

librdkafka re-authenticates before the session lifetime the broker sends in SaslAuthenticate;
its connections must keep serving through several sessions without being cut off.
"""

from __future__ import annotations

import re
import time

from conftest import ck_consumer, ck_drain, ck_producer, free_port, start_broker, unique_topic

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_admin="admin-secret";')
REAUTH_MS = 2000


def test_confluent_kafka_reauthenticates_and_keeps_its_connections(closing, tmp_path):
    ports = {"PLAINTEXT": free_port(), "SASL_PLAINTEXT": free_port()}
    props = tmp_path / "server.properties"
    props.write_text("\n".join([
        "sasl.enabled.mechanisms=PLAIN",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}",
        f"connections.max.reauth.ms={REAUTH_MS}",
        "",
    ]))
    b = start_broker(["--config", str(props)], port=ports["PLAINTEXT"],
                     listeners=",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
                     env={"RUST_LOG": "info,gregor::server=debug"})
    try:
        sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                "sasl.username": "admin", "sasl.password": "admin-secret"}
        bootstrap = f"127.0.0.1:{ports['SASL_PLAINTEXT']}"
        topic = unique_topic("reauth")
        producer = closing(ck_producer(bootstrap, **sasl))
        errors = []
        sent = 0
        # Three session lifetimes of steady traffic.
        deadline = time.monotonic() + 3 * REAUTH_MS / 1000
        while time.monotonic() < deadline:
            producer.produce(topic, value=f"r{sent}".encode(),
                             on_delivery=lambda err, _msg: err and errors.append(err))
            sent += 1
            producer.flush(10)
            time.sleep(0.2)
        assert not errors, errors
        consumer = closing(ck_consumer(bootstrap, **sasl))
        from confluent_kafka import TopicPartition
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert [m.value() for m in ck_drain(consumer, sent)] == [f"r{i}".encode() for i in range(sent)]

        log = open(b.log_path, encoding="utf-8", errors="replace").read()
        reauths = len(re.findall(r"re-authenticated as User:admin", log))
        assert reauths >= 2, f"the producer re-authenticated {reauths} times\n{b.log_tail()}"
        assert "expired (connections.max.reauth.ms)" not in log, b.log_tail()
    finally:
        b.cleanup()
