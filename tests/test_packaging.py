"""The package's metadata agrees with the requirements files the set-up installs."""

from __future__ import annotations

import re
import tomllib

from conftest import ROOT

import broken_record


def _requirements(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_dependencies_in_step_with_requirements_txt():
    assert sorted(_project()["dependencies"]) == _requirements("requirements.txt")


def test_dev_extra_in_step_with_requirements_dev_txt():
    assert sorted(_project()["optional-dependencies"]["dev"]) == _requirements("requirements-dev.txt")


def test_version_is_the_package_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", broken_record.__version__)
    assert _project()["dynamic"] == ["version"]


def test_no_sys_path_tricks():
    offenders = []
    for path in ROOT.rglob("*"):
        if any(part.startswith(".venv") for part in path.parts) or path.suffix not in (".py", ".sh") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.name == "test_packaging.py":
            continue
        if re.search(r"sys\.path\.(insert|append)|PYTHONPATH", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
