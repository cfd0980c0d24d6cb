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
