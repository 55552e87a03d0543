"""The user-facing documents point at files that exist: every relative Markdown link of the README, ``docs/`` and the
benchmark READMEs, and every results folder they name in backticks. A README figure names the committed run that
produced it; a moved or deleted folder must break this test, not the reader's click."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md",
             ROOT / "benchmarks" / "HISTORY.md"]  # fmt: skip
LINK = re.compile(r"\]\(([^)\s]+)\)")
RESULTS_PATH = re.compile(r"`((?:\.\./)?benchmarks/results/[\w.\-/]+)`")


def _links(text: str) -> list[str]:
    """Relative link targets, anchors dropped (web addresses and in-page anchors are left out)."""
    out = []
    for target in LINK.findall(text):
        path = target.split("#", 1)[0]
        if path and not re.match(r"^[a-z][a-z0-9+.\-]*:", path):
            out.append(path)
    return out


def test_link_extraction():
    text = "see [a](docs/x.md#part), [b](https://example.org/y), [c](#anchor) and [d](../benchmarks/results/r/)"
    assert _links(text) == ["docs/x.md", "../benchmarks/results/r/"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path):
    text = document.read_text(encoding="utf-8")
    missing = [t for t in _links(text) if not (document.parent / t).exists()]
    missing += [t for t in RESULTS_PATH.findall(text)
                if not (document.parent / t).exists() and not (ROOT / t).exists()]  # fmt: skip
    assert not missing, f"{document.relative_to(ROOT)} points at missing files: {missing}"


def test_readme_links_the_full_speed_record():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/performance.md" in _links(readme)
