"""The package as users install it: a wheel built from the repo, installed into a fresh venv outside the checkout."""

from __future__ import annotations

import shutil
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.conftest import ROOT, run


def test_an_installed_wheel_trains_and_benchmarks_from_another_directory(tmp_path):
    """The wheel carries every module, the configs (conf/ at the checkout's top, mapped to dnabert/conf by the
    build), the embedded genome and the Hydra plugins: `python -m dnabert.train` and `dnabert benchmark --help` work
    from a directory that is not the checkout, with the wheel's dnabert (not the editable one), and Hydra finds the
    wheel's sweeper."""
    source = tmp_path / "source"  # the files a wheel is built from, so that the build leaves the checkout clean
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("dnabert", "hydra_plugins", "conf"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                 "-w", str(tmp_path / "wheels")], tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheels").glob("dnabert-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if not name.startswith("dnabert-")}
    checkout = {str(path.relative_to(ROOT)) for folder in ("dnabert", "hydra_plugins/dnabert_plugins")
                for path in (ROOT / folder).rglob("*")
                if path.suffix in (".py", ".gz") and "__pycache__" not in path.parts}
    configs = {f"dnabert/{path.relative_to(ROOT)}" for path in (ROOT / "conf").rglob("*.yaml")}
    assert checkout | configs == shipped, (sorted(checkout | configs - shipped), sorted(shipped - checkout - configs))
    assert not (ROOT / "dnabert" / "conf").exists()  # one copy of the configs: conf/ at the top

    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)], tmp_path).returncode == 0
    python = venv / "bin" / "python"
    installed = run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # the dependencies (torch, lightning, ...) come from this interpreter's site-packages, after the venv's own
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    tmp_path).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([str(python), "-c", "import dnabert; print(dnabert.__file__)"], elsewhere)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    trained = run([str(python), "-m", "dnabert.train", "debug=limit", "trainer.max_steps=2",
                   "callbacks.progress_bar=null", "paths.output_dir=run", "paths.cache_dir=cache"], elsewhere)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (elsewhere / "run" / "checkpoints" / "last.hf" / "model.safetensors").is_file()
    assert (elsewhere / "run" / "metrics.json").is_file()
    sweeper = run([str(python), "-c", "from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import "
                   "Sweeper; print([c.__module__ for c in Plugins.instance().discover(Sweeper)])"], elsewhere)
    assert "hydra_plugins.dnabert_plugins.study_sweeper" in sweeper.stdout, sweeper.stderr[-2000:]
    assert str(site) in run([str(python), "-c", "import hydra_plugins.dnabert_plugins as s; print(s.__file__)"],
                            elsewhere).stdout  # the wheel's plugins, where Hydra looks for sweepers and launchers
    helped = run([str(venv / "bin" / "dnabert"), "benchmark", "--help"], elsewhere)
    assert helped.returncode == 0 and "gue" in helped.stdout, helped.stderr[-2000:]
