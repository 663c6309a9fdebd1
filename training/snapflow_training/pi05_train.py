"""Run LeRobot's ``lerobot-train`` on a tiny pi0.5 (PI05), offline.

PI05's sizes are fixed in LeRobot's code and its processor asks the Hub for the PaliGemma
tokenizer, so a tiny pi0.5 cannot be trained by ``lerobot-train`` alone. This launcher runs
LeRobot's own training entry point (``lerobot.scripts.lerobot_train.main``) unchanged, inside
the two overrides the project already uses to build and reload tiny pi0.5 checkpoints:

* :func:`snapflow_ros.runtime.tiny_pi05_arch.tiny_pi05_architecture` with the sizes recorded
  in ``<arch-dir>/snapflow_tiny_arch.json`` (``TinyPI05Arch``);
* :func:`snapflow_ros.policies.tiny.local_tokenizer_for_hub_names` pointing the tokenizer step
  at a local tokenizer folder.

Everything after ``--`` is ``lerobot-train``'s own command line::

    python -m snapflow_training.pi05_train --arch-dir RUN --tokenizer RUN/tokenizer -- \\
        --policy.type=pi05 --dataset.root=DATA ...

:mod:`snapflow_training.teacher` (``--policy-type pi05``) builds and records this command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """This launcher's own arguments and ``lerobot-train``'s (those after the first ``--``)."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def build_parser() -> argparse.ArgumentParser:
    """The launcher's own options."""
    p = argparse.ArgumentParser(
        prog="snapflow_pi05_train",
        description="lerobot-train for a tiny pi0.5, offline (arguments after -- go to "
        "lerobot-train unchanged).",
    )
    p.add_argument(
        "--arch-dir",
        type=Path,
        required=True,
        help="folder holding snapflow_tiny_arch.json (the tiny pi0.5 sizes)",
    )
    p.add_argument(
        "--tokenizer",
        type=Path,
        required=True,
        help="local tokenizer folder used instead of the Hub's PaliGemma tokenizer",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Apply the tiny pi0.5 overrides and run LeRobot's training entry point."""
    from snapflow_ros.policies.tiny import local_tokenizer_for_hub_names
    from snapflow_ros.runtime.tiny_pi05_arch import TINY_ARCH_FILE, TinyPI05Arch

    argv = sys.argv[1:] if argv is None else argv
    own, lerobot_args = split_argv(argv)
    parser = build_parser()
    args = parser.parse_args(own)
    arch = TinyPI05Arch.load(args.arch_dir)
    if arch is None:
        parser.error(f"--arch-dir {args.arch_dir} has no {TINY_ARCH_FILE}")
    if not (args.tokenizer / "tokenizer_config.json").is_file():
        parser.error(f"--tokenizer {args.tokenizer} has no tokenizer_config.json")
    if not any(a.startswith("--policy.type=pi05") for a in lerobot_args):
        parser.error("the lerobot-train arguments after -- must include --policy.type=pi05")

    from lerobot.scripts import lerobot_train

    from snapflow_ros.runtime.tiny_pi05_arch import tiny_pi05_architecture

    sys.argv = [sys.argv[0], *lerobot_args]  # LeRobot's parser reads sys.argv
    with tiny_pi05_architecture(arch), local_tokenizer_for_hub_names(args.tokenizer):
        lerobot_train.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
