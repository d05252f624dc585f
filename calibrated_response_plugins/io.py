"""Problems in the upstream JSON format: read from files or dicts, write back unchanged."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from calibrated_response_plugins.models import (
    Estimate,
    ModelInputError,
    Variable,
    coerce_estimates,
    coerce_variables,
    estimate_to_dict,
    variable_to_dict,
)


@attrs.frozen
class Problem:
    """A forecasting problem: variables, estimates, and the question they serve."""

    variables: tuple[Variable, ...] = attrs.field(converter=tuple)
    estimates: tuple[Estimate, ...] = attrs.field(converter=tuple)
    target_variable: str | None = None
    question: str | None = None
    meta: dict[str, Any] | None = None


def problem_from_dict(data: Mapping[str, Any]) -> Problem:
    """Read a problem dict (``variables``, ``estimates``, optional ``target_variable``...)."""
    if not isinstance(data, Mapping):
        raise ModelInputError(f"problem: expected a mapping with 'variables' and 'estimates', got {type(data).__name__}")
    for key in ("variables", "estimates"):
        if key not in data:
            raise ModelInputError(f"problem: missing field {key!r}")
    return Problem(
        variables=coerce_variables(data["variables"]),
        estimates=coerce_estimates(data["estimates"]),
        target_variable=data.get("target_variable"),
        question=data.get("question"),
        meta=data.get("meta"),
    )


def problem_to_dict(problem: Problem) -> dict[str, Any]:
    """The upstream JSON layout; ``problem_to_dict(problem_from_dict(d)) == d`` for upstream files."""
    data: dict[str, Any] = {}
    if problem.question is not None:
        data["question"] = problem.question
    if problem.target_variable is not None:
        data["target_variable"] = problem.target_variable
    data["variables"] = [variable_to_dict(v) for v in problem.variables]
    data["estimates"] = [estimate_to_dict(e) for e in problem.estimates]
    if problem.meta is not None:
        data["meta"] = problem.meta
    return data


def load_problem(path: str | Path) -> Problem:
    """Read a problem from a JSON file."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as error:
            raise ModelInputError(f"{path}: not valid JSON ({error})") from None
        except UnicodeDecodeError as error:
            raise ModelInputError(f"{path}: not UTF-8 text ({error})") from None
        except RecursionError:
            raise ModelInputError(f"{path}: JSON nested too deeply to read") from None
        except ValueError as error:  # e.g. an integer literal longer than Python reads
            raise ModelInputError(f"{path}: unreadable JSON ({error})") from None
    if not isinstance(data, Mapping):
        raise ModelInputError(f"{path}: expected a JSON object with 'variables' and 'estimates'")
    return problem_from_dict(data)


def save_problem(problem: Problem, path: str | Path) -> None:
    """Write a problem as JSON in the upstream layout."""
    Path(path).write_text(json.dumps(problem_to_dict(problem), indent=1) + "\n", encoding="utf-8")
