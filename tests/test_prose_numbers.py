"""Every number in the book's prose is glued from a result, or is a reference, or stands in the
reviewed allow-list tests/prose_numbers.txt with its reason (tests/prose_numbers.py)."""
import prose_numbers as pn


def test_every_number_in_the_prose_is_glued_or_allowed():
    missing = pn.unexplained()
    assert not missing, ("numbers written into the prose: glue them from a result, or add them to "
                         "tests/prose_numbers.txt with a reason\n" + "\n".join(missing))


def test_the_allow_list_has_no_stale_entries():
    found = {(file, n) for file, text in pn.sources().items() for n, _ in pn.numbers(text)}
    anywhere = {n for _, n in found}
    stale = [(file, n) for file, entries in pn.allow_list().items() for n in entries
             if (n not in anywhere if file == "*" else (file, n) not in found)]
    assert not stale, f"allow-list entries no page uses any more: {stale}"


def test_the_checker_finds_written_numbers_and_skips_the_rest():
    text = ("The student reaches 97.3% after 3 epochs ({glue:text}`acc` glued; $\\beta = 0.02$ in a formula; "
            "`lr=0.002` in code; §4.4, Table 7, Figs. 19-21, eq. (6), chapter 5 and seed 003 are references).\n"
            "## 5. A heading\n1. a list item")
    assert [n for n, _ in pn.numbers(text)] == ["97.3", "3"]


def test_every_chapter_closes_with_what_was_measured():
    """Text-first chapters: each opens with its title and what it shows, before any code, and
    closes with a section that gives what was measured, glued from the run."""
    import json
    for nb in sorted((pn.ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        first, last = cells[0], cells[-1]
        assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# "), nb
        assert len(pn.prose("".join(first["source"]))) > 300, f"{nb}: the opening says too little"
        text = "".join(last["source"])
        assert last["cell_type"] == "markdown" and text.startswith("## What was measured"), nb
        assert "{glue:text}" in text, f"{nb}: the closing section glues no result"
