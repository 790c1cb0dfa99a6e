"""SASL/OAUTHBEARER with Kafka's unsecured tokens (KIP-255): librdkafka's own unsecured JWTs
(confluent-kafka), a token kafka-python's provider hands over, and the Java clients'
OAuthBearerLoginModule (Apache Kafka 4.1's ``kafka-topics``) log in as the token's subject; a
token without the required scope, an expired one and a signed one are refused.

And with signed tokens (KIP-768, Kafka's OAuthBearerValidatorCallbackHandler): the broker checks
them against a key set (JWKS file) of an RSA and an EC key the test makes with ``cryptography``;
confluent-kafka's ``oauth_cb`` and kafka-python's provider hand over RS256 and ES256 tokens, and
the Java clients fetch theirs from an OAuth token endpoint (the client-credentials flow, served
by the test); tokens signed by another key, for another audience or issuer, without an issue
time or expired are refused, and a rotated key set is read again.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time

import pytest

from conftest import (JAVA, ck_consumer, ck_drain, ck_producer, free_port, kafka_tool, log_since, refused_start,
                      secure_addr, start_broker, unique_topic)

JAAS = ('org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required '
        'unsecuredValidatorRequiredScope="kafka";')


def sasl_plaintext_broker(tmp_path_factory, *properties, env=None):
    """A broker with a PLAINTEXT listener and a SASL_PLAINTEXT one offering OAUTHBEARER, set up by
    ``properties`` (server.properties lines) and ``env``; yields it with ``sasl_bootstrap`` (and
    ``ports`` by listener name, as conftest's ``secure_addr`` takes them)."""
    ports = {"PLAINTEXT": free_port(), "SASL_PLAINTEXT": free_port()}
    props = tmp_path_factory.mktemp("oauth") / "server.properties"
    props.write_text("\n".join(["sasl.enabled.mechanisms=OAUTHBEARER", *properties, ""]))
    b = start_broker(["--config", str(props)], port=ports["PLAINTEXT"],
                     listeners=",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
                     env={"RUST_LOG": "info,gregor::server=debug", **(env or {})})
    b.ports = ports
    b.sasl_bootstrap = secure_addr(b, "SASL_PLAINTEXT")
    try:
        yield b
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def oauth_broker(tmp_path_factory):
    """Unsecured tokens with the scope "kafka"."""
    yield from sasl_plaintext_broker(tmp_path_factory, f"listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config={JAAS}")


def librdkafka_oauth(principal, scope):
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt": True,
            "sasl.oauthbearer.config": f"principal={principal} scope={scope}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsecured_jwt(claims, alg="none", signature=""):
    def b64(value):
        return b64url(json.dumps(value).encode())
    return f"{b64({'alg': alg})}.{b64(claims)}.{signature}"


def unsecured_token(subject, scope="kafka"):
    """An unsecured JWT for ``subject`` with ``scope``, valid for ten minutes."""
    now = time.time()
    return unsecured_jwt({"sub": subject, "iat": now, "exp": now + 600, "scope": scope})


def refused_tokens(idp, prefix):
    """{the reason a signed-token broker logs: token} of two tokens it refuses: one signed by a
    key not in its key set, and an unsecured one (subjects ``<prefix>-stranger``, ``-unsigned``)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return {"the token's signature does not verify": idp.token(f"{prefix}-stranger", "ec-1",
                                                               key=ec.generate_private_key(ec.SECP256R1())),
            "the token's algorithm none is not accepted": unsecured_token(f"{prefix}-unsigned")}


def kp_oauth(bootstrap, token):
    """kafka-python's settings to log in with ``token`` (its token provider) over SASL_PLAINTEXT."""
    from kafka.net.sasl.oauth import AbstractTokenProvider

    class Provider(AbstractTokenProvider):
        def token(self):
            return token

    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
                sasl_oauth_token_provider=Provider())


def ck_round_trip(bootstrap, closing, producer_config, consumer_config, count=5):
    """confluent-kafka produces ``count`` records to a new topic and reads them back."""
    from confluent_kafka import TopicPartition

    topic = unique_topic("oauth")
    producer = closing(ck_producer(bootstrap, **producer_config))
    for i in range(count):
        producer.produce(topic, value=b"o%d" % i)
    assert producer.flush(30) == 0
    consumer = closing(ck_consumer(bootstrap, **consumer_config))
    consumer.assign([TopicPartition(topic, 0, 0)])
    assert [m.value() for m in ck_drain(consumer, count)] == [b"o%d" % i for i in range(count)]


def test_confluent_kafka_logs_in_with_an_unsecured_token(oauth_broker, closing):
    config = librdkafka_oauth("alice", "kafka")
    ck_round_trip(oauth_broker.sasl_bootstrap, closing, config, config, count=10)
    log = log_since(oauth_broker, 0)
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

    def client_config(token):
        return kp_oauth(oauth_broker.sasl_bootstrap, token)

    good = unsecured_token("bob")
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

    now = time.time()
    expired = unsecured_jwt({"sub": "bob", "exp": now - 60, "scope": "kafka"})
    signed = unsecured_jwt({"sub": "bob", "exp": now + 600, "scope": "kafka"}, alg="HS256", signature="c2ln")
    for bad in (expired, signed):
        refused = None
        with pytest.raises(KafkaError):
            refused = KafkaProducer(max_block_ms=5000, bootstrap_timeout_ms=2000, **client_config(bad))
            refused.send(topic, b"refused").get(timeout=10)
        if refused is not None:
            refused.close(timeout=1)
    log = log_since(oauth_broker, 0)
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
    log = log_since(oauth_broker, 0)
    assert "User:carol" in log


# ---------------------------------------------------------------------------
# Signed tokens (KIP-768)
# ---------------------------------------------------------------------------

SIGNED_VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
ISSUER = "https://idp.gregor.test"
AUDIENCE = "gregor"


class IdentityProvider:
    """Signing keys (RSA as "rsa-1", EC P-256 as "ec-1"), their JWKS file, and signed tokens."""

    def __init__(self, directory):
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        self.keys = {"rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                     "ec-1": ec.generate_private_key(ec.SECP256R1())}
        self.jwks_path = directory / "jwks.json"
        self.publish(self.keys)

    def publish(self, keys):
        """Writes the JWKS of ``keys`` (kid: private key)."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        def jwk(kid, key):
            numbers = key.public_key().public_numbers()
            if isinstance(key, rsa.RSAPrivateKey):
                as_bytes = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")  # noqa: E731
                return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64url(as_bytes(numbers.n)),
                        "e": b64url(as_bytes(numbers.e))}
            return {"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")),
                    "y": b64url(numbers.y.to_bytes(32, "big"))}
        self.jwks_path.write_text(json.dumps({"keys": [jwk(kid, key) for kid, key in keys.items()]}))

    def token(self, subject, kid="rsa-1", key=None, lifetime=600, **claims):
        """A JWT for ``subject`` signed with the key ``kid`` (or another ``key`` under that kid)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        key = key or self.keys[kid]
        now = int(time.time())
        body = {"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + lifetime, "scope": "kafka",
                **claims}
        body = {k: v for k, v in body.items() if v is not None}
        alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        signing_input = f"{b64url(json.dumps({'alg': alg, 'kid': kid, 'typ': 'JWT'}).encode())}.{b64url(json.dumps(body).encode())}"
        if alg == "RS256":
            signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{b64url(signature)}"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    return IdentityProvider(tmp_path_factory.mktemp("idp"))


def signed_tokens_broker(tmp_path_factory, jwks_url, env=None):
    """A broker whose SASL_PLAINTEXT listener takes signed tokens of the key set at ``jwks_url``,
    for AUDIENCE from ISSUER."""
    yield from sasl_plaintext_broker(
        tmp_path_factory,
        f"listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class={SIGNED_VALIDATOR}",
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config="
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;",
        f"sasl.oauthbearer.jwks.endpoint.url={jwks_url}",
        f"sasl.oauthbearer.expected.audience={AUDIENCE}",
        f"sasl.oauthbearer.expected.issuer={ISSUER}",
        env=env,
    )


@pytest.fixture(scope="module")
def signed_broker(tmp_path_factory, idp):
    """Signed tokens of ``idp``, its key set read from its JWKS file."""
    yield from signed_tokens_broker(tmp_path_factory, f"file://{idp.jwks_path}")


def test_confluent_kafka_logs_in_with_signed_tokens_from_its_oauth_cb(signed_broker, idp, closing):
    """librdkafka asks ``oauth_cb`` for a token (an RS256 one for the producer, an ES256 one for
    the consumer) and logs in with it; the broker names each client after its token's subject."""
    def config(subject, kid):
        return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
                "oauth_cb": lambda _config: (idp.token(subject, kid), time.time() + 600)}

    ck_round_trip(signed_broker.sasl_bootstrap, closing, config("rsa-writer", "rsa-1"), config("ec-reader", "ec-1"))
    log = log_since(signed_broker, 0)
    assert "authenticated as User:rsa-writer" in log and "authenticated as User:ec-reader" in log


def test_confluent_kafka_fetches_signed_tokens_with_its_oidc_method(signed_broker, idp):
    """librdkafka's own OIDC client (``sasl.oauthbearer.method=oidc``) gets its token from the
    token endpoint with its client id and secret, and logs in as that client."""
    from confluent_kafka.admin import AdminClient

    endpoint = TokenEndpoint(idp, {"rdkafka-svc": "rdkafka-secret"})
    try:
        admin = AdminClient({"bootstrap.servers": signed_broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc",
                             "sasl.oauthbearer.client.id": "rdkafka-svc",
                             "sasl.oauthbearer.client.secret": "rdkafka-secret",
                             "sasl.oauthbearer.token.endpoint.url": endpoint.url})
        assert admin.list_topics(timeout=20).brokers, "metadata served"
        assert endpoint.requests and endpoint.requests[0][0] == "rdkafka-svc", endpoint.requests
        assert "authenticated as User:rdkafka-svc" in log_since(signed_broker, 0)
    finally:
        endpoint.close()


def test_kafka_python_signed_tokens_and_the_refused_ones(signed_broker, idp):
    """kafka-python's token provider: a good ES256 token logs in; one signed by a key not in the
    set, one for another audience and an unsecured one are refused with an authentication error
    and the reason logged (the broker's unit tests check the other claims). A rotated key set (a new key
    under a new kid) is read again without a restart."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    topic = unique_topic("oauth-signed-kp")

    def send(token):
        producer = KafkaProducer(max_block_ms=5000, bootstrap_timeout_ms=2000, **kp_oauth(signed_broker.sasl_bootstrap, token))
        try:
            return producer.send(topic, b"v").get(timeout=10)
        finally:
            producer.close(timeout=1)

    assert send(idp.token("kp-user", "ec-1")).offset == 0
    refused = {**refused_tokens(idp, "kp"),
               "is none of sasl.oauthbearer.expected.audience": idp.token("kp-user", aud="someone-else")}
    for reason, token in refused.items():
        with pytest.raises(KafkaError):
            send(token)
        assert reason in log_since(signed_broker, 0), f"the broker logs why: {reason}"

    rotated = ec.generate_private_key(ec.SECP256R1())
    idp.publish({**idp.keys, "ec-2": rotated})
    try:
        assert send(idp.token("kp-rotated", "ec-2", key=rotated)).offset == 1
    finally:
        idp.publish(idp.keys)


class JsonEndpoint:
    """A small HTTP(S) server on a free port of 127.0.0.1 answering ``method`` requests to
    ``path`` with ``answer(handler)``: a JSON-able body, or None for 401."""

    def __init__(self, method, path, answer, certs=None):
        import ssl

        def respond(handler):
            body = answer(handler)
            handler.send_response(401 if body is None else 200)
            payload = b"" if body is None else json.dumps(body).encode()
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)

        handler = type("Handler", (http.server.BaseHTTPRequestHandler,),
                       {f"do_{method}": respond, "log_message": lambda *args: None})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        scheme = "http"
        if certs:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certs["broker"])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TokenEndpoint(JsonEndpoint):
    """An OAuth 2 token endpoint (client-credentials grant): a POST with the client's id and
    secret (HTTP Basic) gets an RS256 token of ``idp`` whose subject is the id."""

    def __init__(self, idp, secrets):
        self.requests = []

        def token(handler):
            form = handler.rfile.read(int(handler.headers.get("Content-Length", 0))).decode()
            credentials = base64.b64decode(handler.headers.get("Authorization", "Basic ").split(" ", 1)[1]).decode()
            client_id, _, secret = credentials.partition(":")
            self.requests.append((client_id, form))
            if "grant_type=client_credentials" not in form or secrets.get(client_id) != secret:
                return None
            return {"access_token": idp.token(client_id), "token_type": "Bearer", "expires_in": 600}

        super().__init__("POST", "/token", token)


@pytest.mark.skipif(JAVA is None, reason="java is not installed")
def test_java_clients_fetch_signed_tokens_from_a_token_endpoint(signed_broker, idp, tools_classpath, tmp_path):
    """Kafka 4.1's OAuthBearerLoginCallbackHandler gets a token from the token endpoint with its
    client id and secret, and ``kafka-topics`` logs in with it as that client."""
    endpoint = TokenEndpoint(idp, {"java-svc": "java-secret"})
    try:
        config = tmp_path / "client.properties"
        config.write_text("\n".join([
            "security.protocol=SASL_PLAINTEXT",
            "sasl.mechanism=OAUTHBEARER",
            "sasl.login.callback.handler.class="
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
            f"sasl.oauthbearer.token.endpoint.url={endpoint.url}",
            "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            'clientId="java-svc" clientSecret="java-secret";',
            "",
        ]))
        topic = unique_topic("oauth-signed-java")
        allowed = [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={endpoint.url}"]
        for args in (("--create", "--topic", topic, "--partitions", "2"), ("--list",)):
            code, out, err = kafka_tool(tools_classpath, "org.apache.kafka.tools.TopicCommand",
                                        signed_broker.sasl_bootstrap, "--command-config", str(config), *args,
                                        jvm_options=allowed)
            assert code == 0, err[-3000:]
        assert topic in out.split()
        assert endpoint.requests and endpoint.requests[0][0] == "java-svc", endpoint.requests
        assert "authenticated as User:java-svc" in log_since(signed_broker, 0)
    finally:
        endpoint.close()


def test_a_key_set_that_cannot_be_read_refuses_the_start(tmp_path):
    """Signed tokens without a readable key set refuse the start, saying which file."""
    stderr = refused_start("\n".join([
        "sasl.enabled.mechanisms=OAUTHBEARER",
        f"sasl.server.callback.handler.class={SIGNED_VALIDATOR}",
        f"sasl.oauthbearer.jwks.endpoint.url=file://{tmp_path}/missing.json",
        "",
    ]), "SASL_PLAINTEXT")
    assert f"sasl.oauthbearer.jwks.endpoint.url: cannot read {tmp_path}/missing.json" in stderr, stderr


class JwksEndpoint(JsonEndpoint):
    """The identity provider's JWKS endpoint over HTTPS (the ``gregor certs`` broker certificate),
    serving ``idp``'s JWKS file as it is at each GET."""

    def __init__(self, idp, certs):
        self.gets = 0

        def key_set(_handler):
            self.gets += 1
            return json.loads(idp.jwks_path.read_text())

        super().__init__("GET", "/realms/gregor/protocol/openid-connect/certs", key_set, certs)


def test_the_key_set_is_fetched_over_https_and_again_for_a_new_key(tmp_path_factory, tmp_path, certs):
    """With an https:// ``sasl.oauthbearer.jwks.endpoint.url`` the broker fetches the key set at
    start (trusting the CA of ``SSL_CERT_FILE``); a token signed with a key the provider added
    later is refused at first, makes the broker fetch the set again, and logs in on the client's
    retry, with no restart."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from confluent_kafka.admin import AdminClient

    idp = IdentityProvider(tmp_path)
    endpoint = JwksEndpoint(idp, certs)
    brokers = signed_tokens_broker(tmp_path_factory, endpoint.url, env={"SSL_CERT_FILE": certs["ca"]})
    try:
        b = next(brokers)
        assert endpoint.gets == 1, "fetched once at start"

        def admin(token):
            return AdminClient({"bootstrap.servers": b.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
                                "sasl.mechanism": "OAUTHBEARER",
                                "oauth_cb": lambda _config: (token, time.time() + 600)})

        assert admin(idp.token("https-user", "ec-1")).list_topics(timeout=20).brokers
        rotated = ec.generate_private_key(ec.SECP256R1())
        idp.publish({**idp.keys, "ec-2": rotated})
        assert admin(idp.token("rotated-user", "ec-2", key=rotated)).list_topics(timeout=30).brokers
        log = log_since(b, 0)
        assert "no key of the key set has kid \"ec-2\"" in log, "refused before the new set was fetched"
        assert "authenticated as User:rotated-user" in log and endpoint.gets >= 2
    finally:
        brokers.close()
        endpoint.close()

