"""A quixstreams word count with processing_guarantee="exactly-once": reads words-in (keyed by
word), counts per key in its RocksDB state (backed by a changelog topic), writes
{"word", "count"} to words-out, and stops after `count` records. Run by test_quixstreams.py in
a venv of its own (quixstreams pins its own confluent-kafka)."""

import sys

from quixstreams import Application

bootstrap, state_dir, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = Application(broker_address=bootstrap, consumer_group="wordcount", auto_offset_reset="earliest",
                  processing_guarantee="exactly-once", state_dir=state_dir)
words = app.topic("words-in", key_deserializer="str", value_deserializer="str")
counts = app.topic("words-out", key_serializer="str", value_serializer="json")


def count_word(word, state):
    n = state.get("count", 0) + 1
    state.set("count", n)
    return {"word": word, "count": n}


app.dataframe(words).apply(count_word, stateful=True).to_topic(counts)
app.run(count=count, timeout=60)
