"""The README's first screen: its headline table says what the recorded runs say, and nothing in it
points outside the repository."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_headline_row_matches_the_record(profile):
    text = (ROOT / "README.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(f"| `{profile}` |")]
    assert len(rows) == 1, f"the README's headline table has {len(rows)} rows for {profile}"
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    record = json.loads((ROOT / "results" / profile / "metrics.json").read_text())
    env = record["environment"]
    assert cells[2] == f"{100 * record['teacher']['test_accuracy']:.2f}%"
    assert cells[3] == f"{100 * record['student']['test_accuracy']['mean']:.2f}%"
    assert record["student"]["test_accuracy"]["n"] == 3  # the header says "mean of 3 seeds"
    assert cells[4] == f"{env['date']}, {env.get('commit') or env.get('recorded_in_commit')}"


def test_the_first_screen_stays_short_and_inside_the_repository():
    text = (ROOT / "README.md").read_text()
    assert "../shared" not in text and "../" not in re.sub(r"`[^`]*`", "", text)
    assert len(text.split()) < 600, "the README is a first screen; details go to book/reproduce.md"
    assert "make book" in text and "make test" in text and "_build/html/index.html" in text
