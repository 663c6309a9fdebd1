"""scripts/setup_env.sh refuses a first install on a nearly full disk with a clear message."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup_env.sh"


def _fake_venv(tmp_path: Path) -> Path:
    """A venv whose python exits 7: reaching the pip install shows as exit code 7."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\nexit 7\n")
    python.chmod(0o755)
    return venv


def _fake_df(tmp_path: Path, free_kb: int) -> Path:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    df = bin_dir / "df"
    df.write_text(
        "#!/bin/sh\n"
        "echo 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
        f"echo '/dev/x 100000000 1 {free_kb} 1% /'\n"
    )
    df.chmod(0o755)
    return bin_dir


def _run(venv: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, VENV=str(venv), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )


def test_first_install_with_too_little_disk_stops_before_pip(tmp_path):
    venv = _fake_venv(tmp_path)
    result = _run(venv, _fake_df(tmp_path, free_kb=3 * 1024 * 1024))
    assert result.returncode == 2, result.stderr + result.stdout
    assert "3 GB free" in result.stderr
    assert "needs about 8 GB" in result.stderr
    assert "[setup] installing" not in result.stdout
    assert not list(venv.glob(".snapflow-setup-*"))


def test_a_venv_that_has_torch_is_updated_even_on_a_small_disk(tmp_path):
    venv = _fake_venv(tmp_path)
    (venv / "lib" / "python3.12" / "site-packages" / "torch").mkdir(parents=True)
    result = _run(venv, _fake_df(tmp_path, free_kb=1024 * 1024))
    assert result.returncode == 7, result.stderr
    assert "[setup] installing" in result.stdout
    assert "GB free" not in result.stderr
