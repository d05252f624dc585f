"""The long run of the property-based fuzzer (the short one is tests/test_fuzz.py).

    python benchmarks/fuzz.py --examples 5000 [--seed 1] [--backend maxent]
    python benchmarks/fuzz.py --minutes 10 [--examples 200]   # batches of 200, seeds 0, 1, ...

Draws problems from :mod:`calibrated_response_plugins.fuzzing` and runs each
through reading, compiling and (for the ones that compile) a maxent fit of a
tiny grid; then random configs through every backend's config. Prints how many
problems each stage tried and how they ended. A defect (an exception other than
a named ``ModelInputError``/``ValueError``, a warning, or a non-finite number in
the answer) stops the run with Hypothesis' shrunk example. Needs the ``test`` extra.
"""

from __future__ import annotations

import argparse
import collections
import time
import warnings

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from calibrated_response_maxent.config import MaxentConfig
from calibrated_response_plugins import DistributionBuilder
from calibrated_response_plugins.config import CoreConfig, config_from_options
from calibrated_response_plugins.fuzzing import check_built, check_compiled, configs, problems, read_problem
from calibrated_response_smm.config import SMMConfig


def run(examples: int, random_seed: int, backend: str, counts: collections.Counter) -> collections.Counter:
    """Run the problem and config properties ``examples`` times each; add the outcomes to ``counts``."""
    budget = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))

    @seed(random_seed)
    @budget
    @given(st.booleans(), st.data(), st.integers(1, 4), st.sampled_from((0.0, 1e-12, 1e-3, 1.0)))
    def problem_property(wild, data, bins, l2):
        counts["problems"] += 1
        problem = read_problem(data.draw(problems(wild=wild)))
        if problem is None:
            counts["refused on reading"] += 1
            return
        compiled = check_compiled(problem, CoreConfig(max_bins=bins, l2_regularization=l2))
        if compiled is None:
            counts["refused on compiling"] += 1
            return
        counts["skips"] += len(compiled.skipped)
        counts["constraints"] += len(compiled.constraints)
        histogram, info = DistributionBuilder(
            problem.variables, problem.estimates, backend=backend,
            config={"max_bins": bins, "l2_regularization": l2, "max_iterations": 2000},
        ).build(progress=False)
        check_built(histogram, info)
        counts["fitted"] += 1
        counts["converged"] += bool(info["converged"])

    @seed(random_seed)
    @budget
    @given(configs(), st.sampled_from((CoreConfig, MaxentConfig, SMMConfig)))
    def config_property(options, cls):
        counts["configs"] += 1
        try:
            config = config_from_options(cls, options)
        except ValueError:
            counts["configs refused"] += 1
            return
        if isinstance(config, SMMConfig):
            assert config.chunk_size <= config.num_iterations

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning reaching the caller is a defect
        problem_property()
        config_property()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000, help="problems (and configs) to try")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed")
    parser.add_argument("--backend", default="maxent", help="backend that fits the compiled problems")
    parser.add_argument("--minutes", type=float, default=None,
                        help="repeat batches of --examples with seeds --seed, --seed + 1, ... for this long")
    args = parser.parse_args()
    started = time.perf_counter()
    counts: collections.Counter = collections.Counter()
    batch_seed = args.seed
    while True:
        run(args.examples, batch_seed, args.backend, counts)
        batch_seed += 1
        if args.minutes is None or time.perf_counter() - started > 60.0 * args.minutes:
            break
    seeds = f"seed {args.seed}" if batch_seed == args.seed + 1 else f"seeds {args.seed}-{batch_seed - 1}"
    print(f"{time.perf_counter() - started:.0f} s, {seeds}: no defect found")
    for key, value in counts.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
