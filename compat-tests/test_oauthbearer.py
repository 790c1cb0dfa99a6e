"""SASL/OAUTHBEARER with Kafka's unsecured tokens (KIP-255): librdkafka's own unsecured JWTs
(confluent-kafka), a token kafka-python's provider hands over, and the Java clients'
OAuthBearerLoginModule (Apache Kafka 4.1's ``kafka-topics``) log in as the token's subject; a
token without the required scope, an expired one and a signed one are refused.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from conftest import (JAVA, ck_consumer, ck_drain, ck_producer, free_port, kafka_tool, start_broker,
                      unique_topic)

JAAS = ('org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required '
        'unsecuredValidatorRequiredScope="kafka";')


@pytest.fixture(scope="module")
def oauth_broker(tmp_path_factory):
    ports = {"PLAINTEXT": free_port(), "SASL_PLAINTEXT": free_port()}
    props = tmp_path_factory.mktemp("oauth") / "server.properties"
    props.write_text("\n".join([
        "sasl.enabled.mechanisms=OAUTHBEARER",
        f"listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config={JAAS}",
        "",
    ]))
    b = start_broker(["--config", str(props)], port=ports["PLAINTEXT"],
                     listeners=",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
                     env={"RUST_LOG": "info,gregor::server=debug"})
    b.sasl_bootstrap = f"127.0.0.1:{ports['SASL_PLAINTEXT']}"
    try:
        yield b
    finally:
        b.cleanup()


def librdkafka_oauth(principal, scope):
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt": True,
            "sasl.oauthbearer.config": f"principal={principal} scope={scope}"}


def unsecured_jwt(claims, alg="none", signature=""):
    def b64(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': alg})}.{b64(claims)}.{signature}"


def test_confluent_kafka_logs_in_with_an_unsecured_token(oauth_broker, closing):
    topic = unique_topic("oauth")
    producer = closing(ck_producer(oauth_broker.sasl_bootstrap, **librdkafka_oauth("alice", "kafka")))
    for i in range(10):
        producer.produce(topic, value=b"o%d" % i)
    assert producer.flush(30) == 0
    consumer = closing(ck_consumer(oauth_broker.sasl_bootstrap, **librdkafka_oauth("alice", "kafka")))
    from confluent_kafka import TopicPartition
    consumer.assign([TopicPartition(topic, 0, 0)])
    assert [m.value() for m in ck_drain(consumer, 10)] == [b"o%d" % i for i in range(10)]
    log = open(oauth_broker.log_path, encoding="utf-8", errors="replace").read()
    assert "User:alice" in log, "the token's subject is the principal"


def test_a_token_without_the_required_scope_is_refused(oauth_broker):
    from confluent_kafka import KafkaError, Producer
    errors = []
    producer = Producer({"bootstrap.servers": oauth_broker.sasl_bootstrap, **librdkafka_oauth("mallory", "other"),
                         "error_cb": errors.append, "message.timeout.ms": 3000})
    producer.produce(unique_topic("oauth-refused"), value=b"x")
    producer.flush(5)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert any("scope" in e.str() for e in errors), "the client is told why"


def test_kafka_python_with_a_token_provider_and_refused_tokens(oauth_broker):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def __init__(self, token):
            super().__init__()
            self.value = token

        def token(self):
            return self.value

    def client_config(token):
        return dict(bootstrap_servers=oauth_broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                    sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider(token))

    now = time.time()
    good = unsecured_jwt({"sub": "bob", "iat": now, "exp": now + 600, "scope": "kafka"})
    topic = unique_topic("oauth-kp")
    producer = KafkaProducer(**client_config(good))
    try:
        producer.send(topic, b"from-kafka-python").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **client_config(good))
    try:
        assert [m.value for m in consumer][:1] == [b"from-kafka-python"]
    finally:
        consumer.close()

    expired = unsecured_jwt({"sub": "bob", "exp": now - 60, "scope": "kafka"})
    signed = unsecured_jwt({"sub": "bob", "exp": now + 600, "scope": "kafka"}, alg="HS256", signature="c2ln")
    for bad in (expired, signed):
        refused = None
        with pytest.raises(KafkaError):
            refused = KafkaProducer(max_block_ms=5000, **client_config(bad))
            refused.send(topic, b"refused").get(timeout=10)
        if refused is not None:
            refused.close(timeout=1)
    log = open(oauth_broker.log_path, encoding="utf-8", errors="replace").read()
    assert "the token has expired" in log and "only unsecured tokens" in log


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_java_clients_log_in_with_the_unsecured_login_module(oauth_broker, tools_classpath, tmp_path):
    config = tmp_path / "client.properties"
    config.write_text("\n".join([
        "security.protocol=SASL_PLAINTEXT",
        "sasl.mechanism=OAUTHBEARER",
        "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
        'unsecuredLoginStringClaim_sub="carol" unsecuredLoginListClaim_scope=",kafka";',
        "",
    ]))
    topic = unique_topic("oauth-java")
    code, out, err = kafka_tool(tools_classpath, "org.apache.kafka.tools.TopicCommand", oauth_broker.sasl_bootstrap,
                                "--command-config", str(config), "--create", "--topic", topic, "--partitions", "2")
    assert code == 0, err
    code, out, err = kafka_tool(tools_classpath, "org.apache.kafka.tools.TopicCommand", oauth_broker.sasl_bootstrap,
                                "--command-config", str(config), "--list")
    assert code == 0 and topic in out.split(), (out, err)
    log = open(oauth_broker.log_path, encoding="utf-8", errors="replace").read()
    assert "User:carol" in log
