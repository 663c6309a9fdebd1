"""Build script for snapflow_ros (ament_python package, also installable with pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "snapflow_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="One-step flow-matching VLA policies (SmolVLA, pi0.5) on ROS 2",
    license="Apache-2.0",
    python_requires=">=3.12",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"])
    + find_packages("training", include=["snapflow_training", "snapflow_training.*"]),
    package_dir={"snapflow_training": "training/snapflow_training"},
    # the shipped trained policies (libero:[spatial-]teacher / snapflow), see snapflow_ros/models
    package_data={PACKAGE: ["py.typed", "models/*/*.json", "models/*/*/*", "models/*/*/vlm/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=[
        "numpy",
        "safetensors",
        "torch",
        "transformers",
        "lerobot[smolvla,pi,dataset]==0.6.1",
    ],
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    entry_points={
        "console_scripts": [
            f"snapflow_demo = {PACKAGE}.cli.demo:main",
            f"snapflow_bench = {PACKAGE}.bench.suite:main",
            f"snapflow_export = {PACKAGE}.export.cli:main",
            f"snapflow_make_tiny = {PACKAGE}.policies.cli:main",
            f"policy_node = {PACKAGE}.nodes.policy_node:main",
            f"synthetic_source = {PACKAGE}.nodes.synthetic_source:main",
            f"libero_bridge = {PACKAGE}.nodes.libero_bridge:main",
            f"libero_eval = {PACKAGE}.eval.libero_eval:main",
            f"libero_eval_merge = {PACKAGE}.eval.merge:main",
            "distill = snapflow_training.distill_cli:main",
            f"record = {PACKAGE}.bags.record:main",
            f"replay = {PACKAGE}.bags.replay:main",
            f"compare = {PACKAGE}.bags.compare:main",
        ],
    },
)
