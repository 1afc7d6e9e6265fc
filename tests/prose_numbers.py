"""The numbers in the book's prose, for tests/test_prose_numbers.py: every number in a markdown
cell or page must be glued from a result ({glue:text}), sit in a formula or code span, be a
reference (§3.3, Table 7, Fig. 12, eq. (6), chapter 5, seed 003, a list item), or be in the
reviewed allow-list tests/prose_numbers.txt with the reason it may stay written out."""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"(§|\bTables?|\bFigs?\.|\b[Ee]qs?\.|\bchapters?|\bseed|\bStage|\bT)\s*\(?$")
NUMBER = re.compile(r"(?<![\w.{`$\\/-])(\d[\d,]*(?:\.\d+)?)(?![\w])")


def prose(text: str) -> str:
    """``text`` without what may hold numbers freely: formulas, code, glue and cross-reference
    roles, link targets, headings, figure directives."""
    kept, fence = [], None  # fence: None outside a block, "code" in a code block, "directive" in one
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            if fence is None:
                fence = "directive" if stripped.startswith("```{") else "code"
            else:
                fence = None
            continue
        if fence == "code" or (fence == "directive" and re.match(r":[\w-]+:", stripped)):
            continue  # code, or a directive's option line; a directive's caption is prose
        kept.append(line)
    text = "\n".join(kept)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]*\$", " ", text)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", " ", text)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"^#+ .*$", " ", text, flags=re.M)
    text = re.sub(r"^\s*\d+\.\s", " ", text, flags=re.M)  # numbered list items
    return text


def numbers(text: str) -> list[tuple[str, str]]:
    """(number, a few words around it) for each number of the prose of ``text`` that is not a
    reference."""
    text = prose(text)
    out = []
    for m in NUMBER.finditer(text):
        before = text[max(0, m.start() - 12): m.start()]
        if REFERENCE.search(before) or re.search(r"\d[-–]$", before) and REFERENCE.search(before[:-2].rstrip(" ,0123456789")):
            continue
        if re.search(r"(§|\bTables?|\bFigs?\.|\b[Ee]qs?\.)\s*(?:[\d.,\s()–-]|and)*$", text[max(0, m.start() - 24): m.start()]):
            continue  # the second number of a range or list of references: Figs. 19-21, eqs. (2)-(3)
        around = text[max(0, m.start() - 30): m.end() + 15].replace("\n", " ")
        out.append((m.group(1).rstrip(","), " ".join(around.split())))
    return out


def sources() -> dict[str, str]:
    """Every page of prose: the markdown cells of the notebooks and the book's own pages."""
    out = {}
    for nb in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        out[str(nb.relative_to(ROOT))] = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for md in sorted((ROOT / "book").rglob("*.md")):
        if "_build" not in md.parts:
            out[str(md.relative_to(ROOT))] = md.read_text()
    return out


def allow_list(path: Path = ROOT / "tests" / "prose_numbers.txt") -> dict[str, dict[str, str]]:
    """``{file: {number: reason}}`` from lines ``file | number | reason``."""
    out: dict[str, dict[str, str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        file, number, reason = (p.strip() for p in line.split("|", 2))
        if not reason:
            raise ValueError(f"{path}: {number} in {file} has no reason")
        out.setdefault(file, {})[number] = reason
    return out


def unexplained(allowed: dict | None = None) -> list[str]:
    """``file | number | ... words around it`` for each number neither glued nor allowed."""
    allowed = allow_list() if allowed is None else allowed
    everywhere = allowed.get("*", {})
    return [f"{file} | {number} | ... {around}" for file, text in sources().items()
            for number, around in numbers(text) if number not in allowed.get(file, {}) and number not in everywhere]


if __name__ == "__main__":  # print what is not allowed yet
    print("\n".join(unexplained()))
