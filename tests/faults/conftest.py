"""The faults suite's summary table: each test adds its rows; written once at the end to
``test-artifacts/faults-summary.txt`` (git-ignored) and printed (seen with ``pytest -s``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import ARTIFACTS

Row = tuple[str, ...]
HEADER: Row = ("fault", "kills", "received at fault", "restarts", "lost", "duplicated", "bound")


@pytest.fixture(scope="session")
def faults_summary() -> Iterator[list[Row]]:
    rows: list[Row] = []
    yield rows
    if not rows:
        return
    ordered = [HEADER, *rows]
    widths = [max(len(r[i]) for r in ordered) for i in range(len(HEADER))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in ordered
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lost = sum(int(r[4]) for r in rows if r[4].isdigit())
    dup = sum(int(r[5]) for r in rows if r[5].isdigit())
    kills = sum(int(r[1]) for r in rows if r[1].isdigit())
    lines.append("")
    lines.append(f"{len(rows)} cases, {kills} SIGKILLs: {lost} digests lost, {dup} duplicated")
    text = "\n".join(lines) + "\n"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults-summary.txt").write_text(text, "utf-8")
    print("\n" + text)
