"""Property-based fuzzing of the models, the compiler and the builder (maxent, tiny problems).

A short budget for every test run; ``benchmarks/fuzz.py`` runs the same properties long.
pytest turns every warning into an error here (pyproject ``filterwarnings``), so a numpy
RuntimeWarning reaching the caller fails these properties too.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibrated_response_maxent.config import MaxentConfig
from calibrated_response_plugins import DistributionBuilder
from calibrated_response_plugins.config import CoreConfig, config_from_options
from calibrated_response_plugins.fuzzing import check_built, check_compiled, configs, problems, read_problem
from calibrated_response_smm.config import SMMConfig

# derandomize: the same examples on every run, so CI is repeatable; the long run is random.
FAST = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
SLOW = settings(FAST, max_examples=25)

max_bins = st.integers(1, 4)
l2 = st.sampled_from((0.0, 1e-12, 1e-3, 1.0))


@FAST
@given(problems(wild=True))
def test_any_problem_dict_reads_or_is_refused_by_name(data):
    read_problem(data)


@FAST
@given(problems(wild=False), max_bins, l2)
def test_compiled_constraints_are_finite_and_keep_every_estimate(data, bins, l2_regularization):
    problem = read_problem(data)
    if problem is not None:
        check_compiled(problem, CoreConfig(max_bins=bins, l2_regularization=l2_regularization))


@FAST
@given(problems(wild=True), max_bins)
def test_wild_problems_compile_or_are_refused_by_name(data, bins):
    problem = read_problem(data)
    if problem is not None:
        check_compiled(problem, CoreConfig(max_bins=bins))


@SLOW
@given(problems(wild=False, max_estimates=4), max_bins, l2)
def test_maxent_fits_of_extreme_problems_are_finite(data, bins, l2_regularization):
    problem = read_problem(data)
    if problem is None or check_compiled(problem, CoreConfig(max_bins=bins)) is None:
        return
    config = {"max_bins": bins, "l2_regularization": l2_regularization, "max_iterations": 2000}
    histogram, info = DistributionBuilder(problem.variables, problem.estimates, backend="maxent",
                                          config=config).build(progress=False)
    check_built(histogram, info)


@FAST
@given(configs(), st.sampled_from((CoreConfig, MaxentConfig, SMMConfig)))
def test_configs_are_built_or_refused_with_a_value_error(options, cls):
    try:
        config = config_from_options(cls, options)
    except ValueError as error:
        assert str(error)
        return
    if isinstance(config, SMMConfig):
        assert config.chunk_size <= config.num_iterations
