"""One layer rule table for the whole code base (docs/architecture.md, "Layer rules").

Every ``.py`` file of ``snapflow_ros/``, ``training/snapflow_training/`` and ``scripts/`` is
parsed (imports anywhere in the file count, lazy ones inside functions too) and checked
against :data:`RULES`: which parts of the package a part may import, and which outside
packages (ROS, torch) it must not. A few single files are exceptions (:data:`EXCEPTIONS`),
each with its reason. Importing the parameter schema is also checked in a fresh interpreter.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from test.fresh_interpreter import modules_loaded

REPO = Path(__file__).resolve().parents[1]

# Packages of ROS 2 (client library, launch, messages, bag I/O, cv_bridge).
ROS = (
    "rclpy",
    "launch",
    "launch_ros",
    "sensor_msgs",
    "std_msgs",
    "trajectory_msgs",
    "geometry_msgs",
    "diagnostic_msgs",
    "rcl_interfaces",
    "builtin_interfaces",
    "lifecycle_msgs",
    "rosgraph_msgs",
    "rosbag2_py",
    "cv_bridge",
)
TORCH = ("torch", "lerobot")


@dataclass(frozen=True)
class Rule:
    """What one part (a folder, or a single module) may import.

    ``may``: the modules of ``snapflow_ros`` / ``snapflow_training`` it may import (a name
    allows that module and everything below it); a folder may always import its own modules.
    ``never``: outside packages (top-level names) it must not import.
    """

    may: tuple[str, ...] = ()
    never: tuple[str, ...] = ()


P = "snapflow_ros."


def parts(*names: str) -> tuple[str, ...]:
    """``snapflow_ros.NAME`` for each name."""
    return tuple(P + n for n in names)


ALL = parts(
    *("bags", "bench", "cli", "client", "control", "dds_domains", "eval", "export"),
    *("launch_args", "launching", "nodes", "params", "policies", "ros_conversions"),
    *("runtime", "sim", "training_data"),
)
BENCH_HELPERS = parts("bench.machine", "bench.output")  # machine info, JSON emit
NO_ROS_OR_TORCH = (*ROS, *TORCH)

# The rule table: key = a folder (``snapflow_ros.x``) or a module (``snapflow_ros.x.y``);
# a file follows the most specific key above it. docs/architecture.md, "Layer rules".
RULES: dict[str, Rule] = {
    # the package's __init__ only (every part below has its own rule)
    "snapflow_ros": Rule(never=NO_ROS_OR_TORCH),
    # parameters, schema: the words and the validators; importing them loads nothing heavy
    P + "params.choices": Rule(never=(*NO_ROS_OR_TORCH, "cv2")),
    P + "params.schema": Rule(may=parts("params.choices", "policies"), never=NO_ROS_OR_TORCH),
    # parameters, tables: the two nodes' tables (their run-time rows live in control/)
    P + "params": Rule(may=parts("control", "policies", "runtime", "sim"), never=ROS),
    P + "runtime": Rule(may=parts("policies"), never=ROS),  # runtime <-> registry: documented
    P + "policies": Rule(may=parts("runtime"), never=ROS),
    P + "control": Rule(may=parts("params.choices", "params.schema"), never=NO_ROS_OR_TORCH),
    P + "ros_conversions": Rule(may=parts("params.choices"), never=TORCH),
    P + "sim": Rule(may=parts("control"), never=ROS),
    # training data: the expert's demonstrations recorded as LeRobotDatasets, from the simulator
    P + "training_data": Rule(may=parts("sim"), never=ROS),
    # nodes: no eval, bench, cli, bags, client, training
    P + "nodes": Rule(
        may=parts("control", "params", "policies", "ros_conversions", "runtime", "sim")
    ),
    P + "client": Rule(may=parts("control")),
    P + "client.waiting": Rule(never=NO_ROS_OR_TORCH),
    P + "client.names": Rule(never=NO_ROS_OR_TORCH),
    # bags: ROS (and NodeClient) only in the record and replay tools; no node
    P + "bags": Rule(may=parts("client.names", "client.waiting", "control"), never=NO_ROS_OR_TORCH),
    P + "bags.record": Rule(may=parts("bags", "client", "control")),
    P + "bags.replay": Rule(may=parts("bags", "client", "control")),
    P + "launching": Rule(never=NO_ROS_OR_TORCH),
    P + "launch_args": Rule(may=parts("params", "policies"), never=NO_ROS_OR_TORCH),
    P + "dds_domains": Rule(never=NO_ROS_OR_TORCH),
    P + "export": Rule(may=parts("policies", "runtime"), never=ROS),
    P + "cli": Rule(may=parts("client", "control", "launching", "policies", "ros_conversions")),
    P + "eval": Rule(
        may=(
            *parts("client", "control", "dds_domains", "launching", "policies"),
            *parts("ros_conversions", "sim"),
            *BENCH_HELPERS,
        )
    ),
    # bench measures every part; training only through one exception (below)
    P + "bench": Rule(may=ALL),
    # shared with training and eval: import nothing of ours (so training -> bench is no cycle)
    P + "bench.machine": Rule(),
    P + "bench.output": Rule(),
    "snapflow_training": Rule(
        may=(*parts("policies", "runtime", "sim", "training_data"), *BENCH_HELPERS), never=ROS
    ),
    "scripts": Rule(may=ALL),
}

# (file, imported name) -> why this one file may break its folder's rule.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("snapflow_ros/params/schema.py", "rclpy"): (
        "topic names are checked with rclpy's own validator, imported inside the check when "
        "it first runs (importing the schema loads no ROS: test_importing_the_schema_...)"
    ),
    ("snapflow_ros/bench/evidence_distill.py", "snapflow_training"): (
        "the GPU evidence's distillation throughput times the training Trainer's own "
        "train_step; imported inside its functions, only where the training code is installed "
        "(bench/suite.py skips the section otherwise). Moving it into training would move the "
        "evidence worker's entry point too"
    ),
}

# Parts whose import graph may have a cycle (documented in docs/architecture.md).
MUTUAL = {frozenset({P + "runtime", P + "policies"})}


@dataclass(frozen=True)
class Violation:
    """One import a rule forbids."""

    file: str
    line: int
    imported: str
    part: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.part} imports {self.imported}"


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of ``path``; ``scripts/x.py`` is ``scripts.x``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] == "training":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def part_of(module: str, rules: dict[str, Rule]) -> str | None:
    """The most specific rule key that ``module`` falls under, or None."""
    keys = [k for k in rules if _within(module, k)]
    return max(keys, key=len) if keys else None


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """``(line, name)`` for every import in the file, relative ones resolved.

    ``from a.b import c`` gives ``a.b.c`` (``c`` may be a module or a name in ``a.b``; both
    fall under the rules of ``a.b``).
    """
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                if not is_package:
                    package = package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return found


def _ours(name: str) -> bool:
    return _within(name, "snapflow_ros") or _within(name, "snapflow_training")


def source_files(root: Path) -> list[Path]:
    """Every checked file below ``root``: the package, the training code, the scripts."""
    dirs = [root / "snapflow_ros", root / "training" / "snapflow_training", root / "scripts"]
    return [p for d in dirs if d.is_dir() for p in sorted(d.rglob("*.py"))]


def check(
    root: Path,
    rules: dict[str, Rule] = RULES,
    exceptions: dict[tuple[str, str], str] = EXCEPTIONS,
) -> tuple[list[Violation], dict[str, set[str]], set[tuple[str, str]]]:
    """Violations below ``root``, the graph between parts, and the exceptions that were used."""
    violations: list[Violation] = []
    graph: dict[str, set[str]] = {}
    used: set[tuple[str, str]] = set()
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        module = module_name(path, root)
        part = part_of(module, rules)
        if part is None:
            violations.append(Violation(rel, 0, "(no rule for this file)", module))
            continue
        rule = rules[part]
        # a folder imports its own modules (the package's __init__ is no folder here)
        folder = part if part.count(".") == 1 or part in ("snapflow_training", "scripts") else None
        for line, name in imports_of(path, module):
            if _ours(name):
                if name in ("snapflow_ros", "snapflow_ros.__version__"):
                    continue  # the package's own __init__ (version, nothing else)
                target = part_of(name, rules) or name
                if target != part:
                    graph.setdefault(part, set()).add(target)
                ok = (
                    target == part
                    or (folder is not None and _within(name, folder))
                    or any(_within(name, m) for m in rule.may)
                )
            else:
                ok = name.split(".")[0] not in rule.never
            if not ok:
                key = next((k for k in exceptions if k[0] == rel and _within(name, k[1])), None)
                if key is not None:
                    used.add(key)
                    continue
                violations.append(Violation(rel, line, name, part))
    return violations, graph, used


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of parts that reach each other."""

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reached = {p: reach(p) for p in graph}
    return sorted(
        (a, b)
        for a in graph
        for b in reached[a]
        if a < b and a in reached.get(b, ()) and frozenset({a, b}) not in MUTUAL
    )


# ------------------------------------------------------------------------------ the real tree
def test_every_file_follows_the_layer_rules():
    violations, _, _ = check(REPO)
    assert [str(v) for v in violations] == []


def test_every_exception_is_still_needed():
    _, _, used = check(REPO)
    assert set(EXCEPTIONS) - used == set()


def test_no_two_parts_import_each_other():
    _, graph, _ = check(REPO)
    assert cycles(graph) == []
    # the cases the rules exist for
    assert "snapflow_training" not in graph.get(P + "runtime", set())
    assert not graph.get(P + "nodes", set()) & {P + "eval", P + "bench", P + "cli"}
    assert P + "bench" not in graph.get("snapflow_training", set())


def test_every_folder_of_the_package_has_a_rule():
    folders = {
        P + d.stem
        for d in (REPO / "snapflow_ros").iterdir()
        if (d.is_dir() and any(d.rglob("*.py"))) or (d.suffix == ".py" and d.stem != "__init__")
    }
    assert folders - set(RULES) == set()


def test_importing_the_parameter_schema_loads_no_torch_opencv_or_ros():
    setup = (
        "import snapflow_ros.params, snapflow_ros.params.schema, snapflow_ros.params.choices\n"
        "import snapflow_ros.control"
    )
    assert modules_loaded(setup, ("torch", "cv2", "lerobot", *ROS)) == []


# ------------------------------------------------------------------- the checker itself
def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checker_reports_forbidden_imports_with_file_and_line(tmp_path):
    _write(tmp_path, "snapflow_ros/__init__.py", "")
    _write(tmp_path, "snapflow_ros/nodes/__init__.py", "")
    _write(
        tmp_path,
        "snapflow_ros/nodes/node.py",
        "from snapflow_ros.control import loop\n\n"
        "def main():\n    from snapflow_ros.eval import libero_eval\n",
    )
    _write(tmp_path, "snapflow_ros/control/__init__.py", "from . import loop\n")
    _write(tmp_path, "snapflow_ros/control/loop.py", "x = 1\n\n\nimport rclpy.node\n")
    _write(tmp_path, "training/snapflow_training/b.py", "from snapflow_ros.bench import soak\n")
    _write(tmp_path, "snapflow_ros/bench/soak.py", "import snapflow_training.distill\n")

    violations, graph, _ = check(tmp_path, exceptions={})
    assert sorted(str(v) for v in violations) == [
        "snapflow_ros/bench/soak.py:1: snapflow_ros.bench imports snapflow_training.distill",
        "snapflow_ros/control/loop.py:4: snapflow_ros.control imports rclpy.node",
        "snapflow_ros/nodes/node.py:4: snapflow_ros.nodes imports snapflow_ros.eval.libero_eval",
        "training/snapflow_training/b.py:1: snapflow_training imports snapflow_ros.bench.soak",
    ]
    assert cycles(graph) == [(P + "bench", "snapflow_training")]

    # the same tree with an exception for one file: only that import is let through
    allowed = {("snapflow_ros/control/loop.py", "rclpy"): "test"}
    violations, _, used = check(tmp_path, exceptions=allowed)
    assert len(violations) == 3 and used == set(allowed)
