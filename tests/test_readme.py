"""The README's configuration table is the code's: regenerate it with
`driftd config-reference` when an option changes."""

from pathlib import Path

from daemon.config import reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_configuration_table_matches_the_code():
    text = README.read_text()
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    documented = text[text.index(start) + len(start):text.index(end)]
    assert documented == reference(), "README configuration table is stale: paste `driftd config-reference` between the markers"
