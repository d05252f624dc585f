"""Every backend README lists exactly the options its config class has."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from calibrated_response_plugins.registry import installed_backends, load_backend

REPO = Path(__file__).resolve().parents[1]
READMES = {"maxent": "calibrated_response_maxent", "pgmax": "calibrated_response_pgmax", "smm": "calibrated_response_smm"}


def documented_options(readme: str) -> set[str]:
    """Lower-case identifiers in backticks between ``<!-- options -->`` and ``<!-- /options -->``."""
    match = re.search(r"<!-- options -->(.*?)<!-- /options -->", readme, re.S)
    assert match, "the README has no <!-- options --> ... <!-- /options --> block"
    return set(re.findall(r"`([a-z_][a-z0-9_]*)`", match.group(1)))


def test_option_names_are_read_from_the_marked_block():
    readme = "intro `not_this`\n<!-- options -->\nOptions (`SomeConfig`): `alpha`, `beta_2` (see `ValueError`), `x=1`\n<!-- /options -->"
    assert documented_options(readme) == {"alpha", "beta_2"}


@pytest.mark.parametrize("backend", sorted(READMES))
def test_readme_lists_every_config_option(backend):
    if backend not in installed_backends():
        pytest.skip(f"the {backend} backend is not installed")
    config = load_backend(backend).hook.make_config(options=None)
    fields = {field.name for field in attrs.fields(type(config))}
    readme = (REPO / READMES[backend] / "README.md").read_text(encoding="utf-8")
    documented = documented_options(readme)
    assert not documented - fields, f"{backend} README lists options its config lacks: {sorted(documented - fields)}"
    assert not fields - documented, f"{backend} README omits options: {sorted(fields - documented)}"
