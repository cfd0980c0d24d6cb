"""What the README lists that the code defines: the configuration table (regenerate it with
`driftd config-reference` when an option changes) and the learner classes a spec may name."""

from pathlib import Path

from daemon.config import reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_configuration_table_matches_the_code():
    text = README.read_text()
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    documented = text[text.index(start) + len(start):text.index(end)]
    assert documented == reference(), "README configuration table is stale: paste `driftd config-reference` between the markers"


def test_every_learner_class_a_spec_may_name_is_listed():
    from learners.spec import ALLOWED

    text = README.read_text()
    listed = text[text.index("The classes a spec may name"):text.index("- Every joined label is first predicted")]
    missing = [name for name in [*ALLOWED, "Union"] if f"`{name}`" not in listed]
    assert not missing, f"README's list of learner classes lacks {missing}"


def test_the_producer_example_writes_events_driftd_reads(kafka_bootstrap, unique_name):
    """The README's "Producing events" snippet, run against the test broker (its topics
    renamed to this test's): the records are keyed by model and decode as driftd's events."""
    from kafka import KafkaConsumer

    from daemon.stream.events import decode_label, decode_prediction

    text = README.read_text()
    section = text[text.index("### Producing events"):text.index("### Dead letters")]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    topics = {"predictions": unique_name("predictions"), "labels": unique_name("labels")}
    code = code.replace('"127.0.0.1:PORT"', repr(kafka_bootstrap))
    for topic, renamed in topics.items():
        code = code.replace(f'send("{topic}"', f'send("{renamed}"')
    exec(compile(code, "README.md", "exec"), {})
    for topic, decode in ((topics["predictions"], decode_prediction), (topics["labels"], decode_label)):
        consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        try:
            records = []
            for _ in range(50):
                records += [r for batch in consumer.poll(timeout_ms=200).values() for r in batch]
                if records:
                    break
        finally:
            consumer.close()
        (record,) = records
        event = decode(record.value)
        assert record.key == b"fraud" and event.model == "fraud" and event.id == "p-1842"
