"""pytest fixtures (loaded through the ``pytest11`` entry point when gregor-kafka is installed):

- ``kafka_broker`` (session): the bootstrap address (``host:port``) of a Gregor broker started
  for the test session, or of the broker ``$GREGOR_BOOTSTRAP`` names (then none is started).
- ``kafka_topic``: a factory, ``kafka_topic(partitions=1, config=None)``, that creates a topic
  with a unique name on that broker and returns the name.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid

import pytest

from gregor import Broker, create_topic

BOOTSTRAP_ENV = "GREGOR_BOOTSTRAP"


@pytest.fixture(scope="session")
def kafka_broker():
    """Bootstrap address of the session's broker: ``$GREGOR_BOOTSTRAP`` if set, else a Gregor
    broker on a free port, stopped (and its data removed) when the session ends."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    with Broker() as broker:
        yield broker.bootstrap


@pytest.fixture
def kafka_topic(kafka_broker, request):
    """``kafka_topic(partitions=1, config=None)`` creates a topic named after the test, unique
    across runs (an external broker keeps its topics), and returns its name."""
    prefix = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:200]
    numbers = itertools.count()

    def make(partitions: int = 1, config: dict | None = None) -> str:
        name = f"{prefix}-{next(numbers)}-{uuid.uuid4().hex[:8]}"
        create_topic(kafka_broker, name, partitions, config)
        return name

    return make
