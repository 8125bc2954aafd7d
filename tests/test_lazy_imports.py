"""What a run's processes import: a worker, and ``digest run`` itself, load neither numpy
(the similarity ranker's; ~16 MB a process), bibtexparser (a library file's; ~11 MB) nor the
feed writers (a worker's), until a run needs them: a list where nobody likes anything never
does. Each case in a fresh interpreter, as a spawned worker starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "sklearn", "threadpoolctl", "bibtexparser", "feedgen", "lxml")


def _loaded(*modules: str) -> dict[str, bool]:
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out))


def test_a_worker_imports_nothing_heavy() -> None:
    loaded = _loaded(
        "digest.run.workers", "digest.run.share", "digest.run.context", "digest.deliver.smtp"
    )
    assert not any(loaded.values()), loaded


def test_the_command_line_and_the_run_load_no_ranker_nor_library_reader() -> None:
    loaded = _loaded("digest.cli.main", "digest.run.daily", "digest.run.publish")
    assert not any(loaded[m] for m in ("numpy", "sklearn", "threadpoolctl", "bibtexparser"))


@pytest.mark.parametrize(
    ("module", "heavy"),
    [("digest.select.similar", "numpy"), ("digest.select.library", "bibtexparser")],
)
def test_the_modules_that_need_them_still_load_them(module: str, heavy: str) -> None:
    assert _loaded(module)[heavy]


def test_the_model_name_of_the_tables_is_the_rankers() -> None:
    from digest.select.similar import TfidfRanker
    from digest.store.profiles import MODEL_NAME

    assert TfidfRanker.name == MODEL_NAME
