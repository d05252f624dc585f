"""The ``calibrated-response`` command line.

``calibrated-response backends`` lists the installed backends;
``calibrated-response fit PROBLEM.json`` fits a problem and prints the target
distribution, the constraint report, skips and warnings, optionally writing
the marginals as JSON and a plot.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from calibrated_response_plugins.builder import DEFAULT_BACKEND, BackendOutputError, DistributionBuilder
from calibrated_response_plugins.distribution import HistogramDistribution
from calibrated_response_plugins.io import load_problem
from calibrated_response_plugins.registry import UnknownBackendError, installed_backends

BINARY_EDGES = (0.0, 0.5, 1.0)
TARGET_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
PLOT_INSTALL_HINT = 'plotting needs matplotlib: pip install "calibrated-response-plugins[plot]"'
REPORT_ID_WIDTH = 28
EXIT_ERROR = 2

_DROP = object()


class PlotDependencyError(RuntimeError):
    """matplotlib is not installed."""


# --------------------------------------------------------------- formatting


def format_number(value: Any) -> str:
    """A number in 4 significant digits; ``-`` for None, NaN or a non-number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(number):
        return "-"
    return f"{number:.4g}"


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in ``…`` when cut."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def _type_name(variable: Any) -> str:
    kind = getattr(variable, "type", None)
    return str(getattr(kind, "value", kind)).lower()


def binary_variable_names(variables: Iterable[Any]) -> set[str]:
    """Names of the variables whose ``type`` is binary (a string or an enum)."""
    return {variable.name for variable in variables if _type_name(variable) == "binary"}


def is_binary_histogram(hist: HistogramDistribution) -> bool:
    """True when the histogram has the binary edges ``[0, 0.5, 1]``."""
    edges = np.asarray(hist.bin_edges, dtype=np.float64)
    return edges.shape == (3,) and bool(np.allclose(edges, BINARY_EDGES))


def format_target_summary(name: str | None, hist: HistogramDistribution, binary: bool) -> str:
    """The target distribution: ``P(true)`` for a binary, mean, std and quantiles otherwise."""
    label = name if name is not None else "(unnamed)"
    if binary:
        return f"target: {label} (binary)\n  P(true) = {float(hist.bin_probabilities[1]):.4f}"
    quantiles = hist.quantile(np.asarray(TARGET_QUANTILES))
    cells = "  ".join(
        f"q{round(q * 100):02d} {format_number(v)}" for q, v in zip(TARGET_QUANTILES, quantiles)
    )
    return (
        f"target: {label} (continuous)\n"
        f"  mean {format_number(hist.mean())}  std {format_number(hist.std())}\n"
        f"  {cells}"
    )


def format_constraint_report(rows: Sequence[Mapping[str, Any]], id_width: int = REPORT_ID_WIDTH) -> str:
    """The constraint report as an aligned table, long ids truncated to ``id_width``."""
    if not rows:
        return "constraints: none fitted"
    headers = ("id", "type", "relation", "target", "fitted", "residual")
    table = [
        (
            truncate(str(row.get("id", "")), id_width),
            str(row.get("estimate_type", "")),
            str(row.get("relation", "")),
            format_number(row.get("target")),
            format_number(row.get("fitted")),
            format_number(row.get("residual")),
        )
        for row in rows
    ]
    widths = [max(len(header), *(len(line[i]) for line in table)) for i, header in enumerate(headers)]
    numeric = (False, False, False, True, True, True)

    def render(cells: Sequence[str]) -> str:
        parts = [cell.rjust(w) if right else cell.ljust(w) for cell, w, right in zip(cells, widths, numeric)]
        return "  " + "  ".join(parts).rstrip()

    lines = [f"constraints ({len(rows)} fitted):", render(headers)]
    lines.extend(render(line) for line in table)
    return "\n".join(lines)


def format_messages(title: str, messages: Sequence[str]) -> str:
    """A titled bullet list, or ``title: none``."""
    if not messages:
        return f"{title}: none"
    return "\n".join([f"{title} ({len(messages)}):", *(f"  - {message}" for message in messages)])


def format_header(question: str | None, info: Mapping[str, Any]) -> str:
    """Question, backend, runtime and convergence."""
    runtime = info.get("runtime_sec")
    runtime_text = f"{float(runtime):.2f} s" if isinstance(runtime, (int, float)) else "-"
    converged = info.get("converged")
    converged_text = "-" if converged is None else ("yes" if converged else "no")
    lines = []
    if question:
        lines.append(f"question: {question}")
    lines.append(f"backend: {info.get('backend', '-')}   runtime: {runtime_text}   converged: {converged_text}")
    if info.get("backend_reason"):
        lines.append(f"  ({info['backend_reason']})")
    return "\n".join(lines)


def format_fit_report(
    question: str | None,
    target: str | None,
    hist: HistogramDistribution,
    info: Mapping[str, Any],
    binary: bool,
) -> str:
    """Everything ``fit`` prints, sections separated by blank lines."""
    sections = [
        format_header(question, info),
        format_target_summary(target, hist, binary),
        format_constraint_report(info.get("constraint_report") or []),
        format_messages("skipped", list(info.get("skipped_constraints") or [])),
        format_messages("warnings", list(info.get("warnings") or [])),
    ]
    return "\n\n".join(sections)


def format_backends(backends: Mapping[str, str]) -> str:
    """One aligned ``name  version`` line per installed backend."""
    if not backends:
        return "no backends installed"
    width = max(len(name) for name in backends)
    return "\n".join(f"{name.ljust(width)}  {backends[name]}" for name in sorted(backends))


# ------------------------------------------------------------------- JSON


def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy of ``value``.

    numpy arrays become lists and numpy scalars Python numbers; non-finite
    floats become None; objects with ``to_dict`` and attrs instances become
    dicts; mapping keys become strings. Anything else that JSON cannot hold is
    dropped (from a dict or a list), or gives None at the top level.
    """
    converted = _convert(value)
    return None if converted is _DROP else converted


def _convert(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return _convert(value.item())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _convert(value.tolist())
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool, np.generic)):
                continue
            converted = _convert(item)
            if converted is not _DROP:
                result[str(key.item() if isinstance(key, np.generic) else key)] = converted
        return result
    if isinstance(value, (list, tuple)):
        items = (_convert(item) for item in value)
        return [item for item in items if item is not _DROP]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _convert(to_dict())
    if attrs.has(type(value)):
        return _convert(attrs.asdict(value, recurse=False))
    return _DROP


def build_output_document(
    target: str | None,
    marginals: Mapping[str, HistogramDistribution],
    info: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``--json`` document: target name, every marginal's ``to_dict()``, JSON-safe info."""
    return {
        "target_variable": target,
        "marginals": {name: json_safe(hist.to_dict()) for name, hist in marginals.items()},
        "info": json_safe(dict(info)),
    }


def write_json(document: Mapping[str, Any], path: str | Path) -> None:
    """Write ``document`` as strict, indented JSON."""
    Path(path).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------- plot


def _matplotlib():
    """The Agg canvas and Figure classes, or :class:`PlotDependencyError`."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotDependencyError(PLOT_INSTALL_HINT) from None
    return FigureCanvasAgg, Figure


def marginal_title(name: str, hist: HistogramDistribution, binary: bool, is_target: bool = False) -> str:
    """Subplot title: the name (marked if target) and ``P(true)`` or the mean."""
    label = truncate(name, 40) + (" (target)" if is_target else "")
    if binary:
        return f"{label}\nP(true) = {float(hist.bin_probabilities[1]):.3f}"
    return f"{label}\nmean = {format_number(hist.mean())}"


def plot_marginals(
    marginals: Mapping[str, HistogramDistribution],
    path: str | Path,
    target: str | None = None,
    binary: Collection[str] | None = None,
) -> Path:
    """Draw each marginal as a bar histogram in a grid of subplots and save it to ``path``.

    :param marginals: ``{variable name: histogram}``; the target, if given, comes first.
    :param path: output image file (format from its suffix, e.g. ``.png``).
    :param target: name of the target variable, marked in its title.
    :param binary: names of binary variables; None: those with edges ``[0, 0.5, 1]``.
    :raises PlotDependencyError: if matplotlib is not installed.
    :raises ValueError: if there is nothing to plot.
    """
    if not marginals:
        raise ValueError("no marginals to plot")
    canvas_class, figure_class = _matplotlib()
    names = sorted(marginals, key=lambda name: name != target)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    figure = figure_class(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    canvas_class(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        hist = marginals[name]
        is_binary = name in binary if binary is not None else is_binary_histogram(hist)
        edges = np.asarray(hist.bin_edges)
        ax.bar(
            edges[:-1],
            hist.bin_probabilities,
            width=np.diff(edges),
            align="edge",
            color="tab:orange" if name == target else "tab:blue",
            edgecolor="white",
            linewidth=0.5,
        )
        if is_binary:
            ax.set_xticks([0.25, 0.75], ["false", "true"])
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylabel("probability")
        ax.set_title(marginal_title(name, hist, is_binary, name == target), fontsize=9)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


# ----------------------------------------------------------------- parsing


def parse_config_options(items: Sequence[str] | None) -> dict[str, Any] | None:
    """``["num_chains=512", "optimizer=adam"]`` -> ``{"num_chains": 512, "optimizer": "adam"}``.

    Values are JSON literals where they parse (numbers, true/false, null,
    lists), plain strings otherwise. None or no items gives None.
    """
    if not items:
        return None
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--config expects KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
        except (ValueError, RecursionError) as error:  # a too-long integer, too deep a nesting
            raise ValueError(f"--config {key}: value cannot be read ({type(error).__name__})") from None
    return options


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``calibrated-response``."""
    parser = argparse.ArgumentParser(
        prog="calibrated-response",
        description="Maximum-entropy distributions from calibrated estimates.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("backends", help="list the installed backends")
    fit = commands.add_parser("fit", help="fit a problem file and report the distributions")
    fit.add_argument("problem", metavar="PROBLEM.json", help="problem file (question, variables, estimates)")
    fit.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        help=f"backend name (default: {DEFAULT_BACKEND}: maxent where the exact solve is expected faster, smm otherwise)",
    )
    fit.add_argument("--target", default=None, help="target variable (default: the problem's)")
    fit.add_argument("--json", dest="json_out", metavar="OUT", default=None, help="write marginals and info as JSON")
    fit.add_argument("--plot", metavar="OUT.png", default=None, help="plot every marginal to an image")
    fit.add_argument(
        "--config",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=None,
        help="backend option; VALUE is read as JSON when it parses (e.g. num_chains=512)",
    )
    fit.add_argument(
        "--checkpoint",
        metavar="DIR",
        default=None,
        help="write the fit's state to DIR as it runs and resume from it after an interruption "
        "(backends with a checkpoint_dir option, e.g. smm)",
    )
    fit.add_argument("--quiet", action="store_true", help="no progress display")
    return parser


# ---------------------------------------------------------------- commands


def run_backends() -> int:
    """Print the installed backends."""
    print(format_backends(installed_backends()))
    return 0


def run_fit(args: argparse.Namespace) -> int:
    """Fit the problem file and print / write the results."""
    config = parse_config_options(args.config)
    if args.checkpoint is not None:
        config = {**(config or {}), "checkpoint_dir": args.checkpoint}
    if args.plot:
        _matplotlib()
    problem = load_problem(args.problem)
    builder = DistributionBuilder(problem.variables, problem.estimates, backend=args.backend, config=config)
    requested = args.target or getattr(problem, "target_variable", None)
    hist, info = builder.build(target_variable=requested, progress=not args.quiet)
    marginals = builder.get_all_marginals(info)
    target = info.get("target_variable") or requested
    binary_names = binary_variable_names(problem.variables)
    target_binary = target in binary_names or is_binary_histogram(hist)
    print(format_fit_report(getattr(problem, "question", None), target, hist, info, target_binary))
    if args.json_out:
        write_json(build_output_document(target, marginals, info), args.json_out)
        print(f"\nwrote {args.json_out}")
    if args.plot:
        known = binary_names | {name for name, h in marginals.items() if is_binary_histogram(h)}
        plot_marginals(marginals, args.plot, target=target, binary=known)
        print(f"wrote {args.plot}")
    return 0


def error_message(error: BaseException) -> str:
    """A one-line description of an expected failure."""
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}"
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {error}"
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``calibrated-response``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    try:
        if args.command == "backends":
            return run_backends()
        return run_fit(args)
    except (OSError, ValueError, UnknownBackendError, BackendOutputError, PlotDependencyError) as error:
        print(f"error: {error_message(error)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
