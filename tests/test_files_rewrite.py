"""Rewrites that reuse the inodes they replace (`digest.files.Rewriter`), on real files:
the new content whole at the path, old readers undisturbed, spares cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from digest.files import SPARE, Rewriter, sweep


def files(folder: Path, n: int, size: int = 5000) -> list[Path]:
    paths = [folder / f"f{i}.xml" for i in range(n)]
    for i, path in enumerate(paths):
        path.write_bytes(b"old %d " % i * size)
    return paths


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_a_pass_of_rewrites_makes_one_new_inode_and_leaves_no_spare(tmp_path: Path) -> None:
    paths = files(tmp_path, 20)
    before = {p.stat().st_ino for p in paths}
    with Rewriter() as rewriter:
        for i, path in enumerate(paths):
            # Shorter, longer and empty contents: a reused spare is truncated to the new size.
            rewriter.write(path, b"new %d " % i * (i * 700 % 9000))
        assert rewriter.reused == 19  # all but the first, which had no spare yet
    for i, path in enumerate(paths):
        assert path.read_bytes() == b"new %d " % i * (i * 700 % 9000)
        assert path.stat().st_nlink == 1
    after = {p.stat().st_ino for p in paths}
    assert len(after - before) <= 1  # the first write's temp file
    assert leftovers(tmp_path) == []


def test_a_new_file_is_made_from_the_spare_too(tmp_path: Path) -> None:
    (old,) = files(tmp_path, 1)
    with Rewriter() as rewriter:
        rewriter.write(old, b"rewritten")
        rewriter.write(tmp_path / "new.xml", b"a new name")  # no file there: no new spare
        assert rewriter.reused == 1 and rewriter.spare is None
        rewriter.write(tmp_path / "third.xml", b"made afresh")
    assert (tmp_path / "new.xml").read_bytes() == b"a new name"
    assert (tmp_path / "third.xml").read_bytes() == b"made afresh"
    assert old.read_bytes() == b"rewritten" and leftovers(tmp_path) == []


def test_a_write_told_the_file_is_absent_links_no_spare(tmp_path: Path) -> None:
    (old,) = files(tmp_path, 1)
    with Rewriter() as rewriter:
        rewriter.write(tmp_path / "new.xml", b"listed as absent", True)
        assert rewriter.spare is None
        # Listed as absent but there after all (made meanwhile): replaced, no spare kept.
        rewriter.write(old, b"replaced", True)
        assert rewriter.spare is None
    assert (tmp_path / "new.xml").read_bytes() == b"listed as absent"
    assert old.read_bytes() == b"replaced" and leftovers(tmp_path) == []


def test_a_reader_of_the_old_file_keeps_its_bytes(tmp_path: Path) -> None:
    a, b = files(tmp_path, 2, size=20_000)
    old_a = a.read_bytes()
    with a.open("rb") as reader, Rewriter() as rewriter:
        head = reader.read(100)  # a web server part way through sending it
        rewriter.write(a, b"new a")
        rewriter.write(b, b"new b " * 3000)  # would reuse a's old inode: it is still open
        assert rewriter.reused == 0
        assert head + reader.read() == old_a
    assert a.read_bytes() == b"new a" and b.read_bytes() == b"new b " * 3000
    assert leftovers(tmp_path) == []


def test_a_file_linked_elsewhere_is_not_written_into(tmp_path: Path) -> None:
    a, b = files(tmp_path, 2)
    backup = tmp_path / "backup"
    backup.mkdir()
    os.link(a, backup / "a.xml")  # a copy made with hard links (cp -al)
    old_a = a.read_bytes()
    with Rewriter() as rewriter:
        rewriter.write(a, b"new a")
        rewriter.write(b, b"new b")
        assert rewriter.reused == 0
    assert (backup / "a.xml").read_bytes() == old_a
    assert a.read_bytes() == b"new a" and b.read_bytes() == b"new b"


def test_readers_never_see_part_of_a_file(tmp_path: Path) -> None:
    paths = files(tmp_path, 4, size=30_000)
    versions = {p: {p.read_bytes()} for p in paths}
    contents = [
        b"%d:%d|" % (n, i) * (20_000 + 3_000 * (n % 7)) for n in range(60) for i in range(4)
    ]
    for n in range(60):
        for i, path in enumerate(paths):
            versions[path].add(contents[n * 4 + i])
    stop = threading.Event()
    seen: list[bytes] = []
    bad: list[str] = []

    def read() -> None:
        while not stop.is_set():
            for path in paths:
                data = path.read_bytes()
                seen.append(data[:8])
                if data not in versions[path]:
                    bad.append(f"{path.name}: {len(data)} bytes, {data[:16]!r}...{data[-16:]!r}")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        with Rewriter() as rewriter:
            for n in range(60):
                for i, path in enumerate(paths):
                    rewriter.write(path, contents[n * 4 + i])
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not bad, bad[:3]
    assert seen  # the readers did read meanwhile
    assert [p.read_bytes() for p in paths] == contents[-4:]
    assert rewriter.reused > 0


def test_a_failed_replace_leaves_the_old_file_and_no_spare(tmp_path: Path) -> None:
    a, b = files(tmp_path, 2)
    old_b = b.read_bytes()
    folder = tmp_path / "c.xml"
    folder.mkdir()  # a folder where a file should be: the rename fails
    (folder / "x").write_bytes(b"")
    with Rewriter() as rewriter:
        rewriter.write(a, b"new a")
        with pytest.raises(OSError):
            rewriter.write(folder, b"new c")
        rewriter.write(b, b"new b")
    assert a.read_bytes() == b"new a" and b.read_bytes() == b"new b" and old_b != b"new b"
    assert leftovers(tmp_path) == []


CRASH = """
import os, sys
from pathlib import Path
from digest.files import Rewriter
folder = Path(sys.argv[1])
rewriter = Rewriter()
for i in range(10):
    rewriter.write(folder / f"f{i}.xml", b"new %d " % i * 4000)
    if i == 5:
        os._exit(9)  # killed mid-pass: no close, no clean-up
"""


def test_a_pass_killed_midway_leaves_whole_files_and_its_spare_is_swept(tmp_path: Path) -> None:
    paths = files(tmp_path, 10)
    olds = [p.read_bytes() for p in paths]
    done = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], check=False)
    assert done.returncode == 9
    for i, path in enumerate(paths):
        assert path.read_bytes() == (b"new %d " % i * 4000 if i <= 5 else olds[i])
    left = leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(SPARE)  # the old f5, unserved
    assert sweep(tmp_path, os.listdir(tmp_path)) == 0  # young: maybe a live writer's
    assert sweep(tmp_path, os.listdir(tmp_path), older=-1) == 1
    assert leftovers(tmp_path) == []
    assert [p.read_bytes()[:6] for p in paths][5:7] == [b"new 5 ", b"old 6 "]


def test_without_leases_every_write_makes_its_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    monkeypatch.delattr(fcntl, "F_SETLEASE")  # as on macOS and the BSDs
    with Rewriter() as rewriter:
        for round_ in range(3):
            for name in ("a.xml", "b.xml"):
                rewriter.write(tmp_path / name, f"{name} {round_}".encode())
        assert rewriter.reused == 0
    assert (tmp_path / "a.xml").read_bytes() == b"a.xml 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xml", "b.xml"]
