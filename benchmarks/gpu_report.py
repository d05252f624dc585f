"""The accelerator figures of ``benchmarks/gpu.sh``: printed, or as the ``gpu`` section of REPORT.md.

    python benchmarks/gpu_report.py DIR                # DIR: what gpu.sh wrote ($OUT); REPORT.md and results/gpu.json
    python benchmarks/gpu_report.py DIR --print-only   # the rates only (gpu.sh ends with this)
    python benchmarks/gpu_report.py --no-device        # the section saying no device was measured

Goals (issue "smm at the scale it exists for", one H200): >= 30 binary site updates
per ns on a sparse graph of 10^6 variables, >= 5 per ns at K = 10, one training
iteration of the 100,000-variable benchmark <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SECTION = "gpu"
GOALS = {"binary site updates / ns": 30.0, "K=10 site updates / ns": 5.0, "100k iteration ms": 50.0}
DEFAULT_OUT = HERE / "results" / "gpu.json"
DEFAULT_REPORT = HERE / "REPORT.md"


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def collect(folder: Path) -> dict:
    """Everything gpu.sh left in ``folder``: machine text, step statuses, throughput, iteration, scale."""
    steps = []
    if (folder / "steps.jsonl").exists():
        steps = [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines() if line.strip()]
    throughput = []
    for path in sorted(folder.glob("throughput_k*.json")):
        data = read_json(path)
        if data:
            throughput += [r for r in data["records"] if r["status"] == "ok"]
    scale = read_json(folder / "scale.json") or {}
    machine = (folder / "machine.txt").read_text(encoding="utf-8").strip() if (folder / "machine.txt").exists() else ""
    return {"machine": machine, "steps": steps, "throughput": throughput,
            "large_iteration": read_json(folder / "large_iteration.json"), "scale": scale.get("records", [])}


def rate_lines(data: dict) -> list[str]:
    """One line per measured figure, with its goal where the issue sets one."""
    lines = []
    for r in data["throughput"]:
        per_ns = r["site_updates_per_s"] / 1e9
        goal = {2: GOALS["binary site updates / ns"], 10: GOALS["K=10 site updates / ns"]}.get(r["states"])
        lines.append(f"Gibbs K={r['states']}, {r['n_vars']:,} variables, {r['n_pairs']:,} pairs, {r['chains']} chains: "
                     f"{per_ns:.3g} site updates / ns" + (f" (goal >= {goal:g})" if goal else ""))
    large = data.get("large_iteration")
    if large:
        lines.append(f"training iteration, {large['n_vars']:,} variables / {large['n_factors']:,} factors / "
                     f"{large['states']} states / {large['num_chains']} chains: {1e3 * large['iteration_s']:.3g} ms "
                     f"(goal <= {GOALS['100k iteration ms']:g}); first with compilation {large['first_iteration_s']:.3g} s, "
                     f"host setup {large['setup_s']:.3g} s")
    for r in data["scale"]:
        if r["status"] == "ok":
            lines.append(f"fit of the {r['n_variables']:,}-variable synthetic {r['graph']}: {r['seconds']:.4g} s, "
                         f"{r['iterations']} iterations, {r['chains']} chains, converged {r['converged']}, "
                         f"max residual {r['max_residual']:.3g}")
        else:
            lines.append(f"fit of the {r['n_variables']:,}-variable synthetic {r['graph']}: {r['status']} "
                         f"({r.get('message', '')})")
    for step in data["steps"]:
        if step["exit"] != 0:
            lines.append(f"step {step['step']!r} exited {step['exit']} after {step['seconds']} s "
                         f"(limit {step['limit']} s; 124 is a timeout)")
    return lines


def render_section(data: dict | None) -> str:
    """The ``gpu`` section of REPORT.md (``data`` None: no device measured)."""
    parts = ["## On an accelerator"]
    command = "`bash benchmarks/gpu.sh` (then `python benchmarks/gpu_report.py DIR` on what it wrote)"
    if data is None or not (data["throughput"] or data["large_iteration"] or data["scale"]):
        parts.append(f"No accelerator was lent to the runs that wrote this page, so there is no GPU figure yet. "
                     f"{command} is ready: in one command of at most ten minutes it installs the core and smm "
                     "without network (`pip install --no-deps --no-build-isolation -e`), then measures Gibbs site "
                     "updates per second on random sparse graphs of 10^6 variables (K = 2 and 10, 256 chains), one "
                     "training iteration of the 100,000-variable benchmark and a converged 10,000-variable fit, "
                     "each step under its own timeout; `GPU_BENCH_SMALL=1` runs the same steps at small sizes. "
                     "Goals on one H200: >= 30 binary site updates per ns, >= 5 per ns at K = 10, one training "
                     "iteration <= 50 ms.")
        return "\n\n".join(parts)
    parts += [f"Measured by {command}.", "Machine:\n\n```text\n" + data["machine"] + "\n```",
              "\n".join(f"- {line}" for line in rate_lines(data))]
    return "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="what gpu.sh wrote ($OUT)")
    parser.add_argument("--print-only", action="store_true", help="print the rates, write nothing")
    parser.add_argument("--no-device", action="store_true", help="write the section saying no device was measured")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    args = parser.parse_args(argv)
    if args.folder is None and not args.no_device:
        parser.error("give the folder gpu.sh wrote, or --no-device")
    data = None if args.no_device else collect(args.folder)
    if args.print_only:
        print("\n".join(rate_lines(data)) if data else "nothing measured")
        return 0
    from sections import write_section

    if data is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    write_section(args.report, SECTION, render_section(data))
    print(f"wrote section {SECTION!r} of {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
