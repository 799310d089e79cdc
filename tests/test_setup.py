"""The project's own set-up: one place for pins, environment.yml agreeing with it, two commands."""

from __future__ import annotations

import re
import tomllib

import yaml
from conftest import REPO


def pins(path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            out[name.lower().replace("_", "-")] = version
    return out


def test_every_requirement_is_pinned_exactly():
    reqs = pins(REPO / "requirements.txt")
    assert reqs["torch"] == "2.13.0"  # a CPU build lies on disk; anything else pulls CUDA
    assert pins(REPO / "requirements-nodeps.txt")


def test_environment_yml_agrees_with_the_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_pins = {}
    for item in pip_section:
        if item.startswith("-e"):
            continue
        name, _, version = item.partition("==")
        env_pins[name.lower().replace("_", "-")] = version
    assert env_pins == pins(REPO / "requirements.txt")
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"
    post = (REPO / "postBuild").read_text()
    assert "--no-deps -r requirements-nodeps.txt" in post


def test_pyproject_reads_the_same_pins():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["dynamic"] == ["dependencies"]
    assert meta["tool"]["setuptools"]["dynamic"]["dependencies"]["file"] == ["requirements.txt"]
    assert meta["project"]["scripts"]["llmcourse"] == "llmcourse.cli:main"


def test_makefile_installs_the_no_deps_packages_without_deps():
    make = (REPO / "Makefile").read_text()
    assert re.search(r"pip install .*--no-deps -r requirements-nodeps.txt", make)


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert any("make start" in b for b in blocks) and any("make test" in b for b in blocks)


def test_data_package_pins_in_code_agree_with_requirements_and_environment():
    """packaged.PINS (the pins the code's error messages print) == requirements-nodeps.txt, and every
    one of them is installed by environment.yml's route (postBuild runs requirements-nodeps.txt)."""
    from llmcourse.toolbox.packaged import PINS

    nodeps = pins(REPO / "requirements-nodeps.txt")
    assert PINS == nodeps, (
        f"in code only: {PINS.items() - nodeps.items()}; in the file only: {nodeps.items() - PINS.items()}"
    )
    # environment.yml must not pin a data package itself (conda's pip would pull its stale dependencies)
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_names = {item.partition("==")[0].lower().replace("_", "-") for item in pip_section}
    assert not env_names & set(PINS), (
        f"environment.yml installs data packages with their dependencies: {env_names & set(PINS)}"
    )
    assert "requirements-nodeps.txt" in (REPO / "postBuild").read_text()


def test_installed_data_packages_are_the_pinned_versions():
    from llmcourse.toolbox.packaged import PINS, installed_version

    assert {dist: installed_version(dist) for dist in PINS} == PINS
