"""Calibrated-response plugins: maximum-entropy joint distributions from elicited estimates.

    from calibrated_response_plugins import DistributionBuilder, load_problem
    problem = load_problem("examples/problems/lumina_probiotic.json")
    builder = DistributionBuilder(problem.variables, problem.estimates, backend="smm")
    histogram, info = builder.build(target_variable=problem.target_variable)
"""

from calibrated_response_plugins.builder import BackendOutputError, DistributionBuilder, constraint_report
from calibrated_response_plugins.compiler import compile_problem
from calibrated_response_plugins.config import CoreConfig, config_from_options
from calibrated_response_plugins.constraints import Constraint, ConstraintSet, Domain, FitResult
from calibrated_response_plugins.distribution import HistogramDistribution
from calibrated_response_plugins.hookspecs import hookimpl
from calibrated_response_plugins.io import Problem, load_problem, problem_from_dict, problem_to_dict, save_problem
from calibrated_response_plugins.models import (
    BinaryVariable,
    ConditionalExpectationEstimate,
    ConditionalProbabilityEstimate,
    ContinuousVariable,
    CorrelationEstimate,
    EqualityProposition,
    EquationEstimate,
    ExpectationEstimate,
    InequalityProposition,
    ModelInputError,
    ProbabilityEstimate,
)
from calibrated_response_plugins.registry import UnknownBackendError, installed_backends, register_backend

__version__ = "0.1.0"

__all__ = [
    "BackendOutputError",
    "BinaryVariable",
    "ConditionalExpectationEstimate",
    "ConditionalProbabilityEstimate",
    "Constraint",
    "ConstraintSet",
    "ContinuousVariable",
    "CoreConfig",
    "CorrelationEstimate",
    "DistributionBuilder",
    "Domain",
    "EqualityProposition",
    "EquationEstimate",
    "ExpectationEstimate",
    "FitResult",
    "HistogramDistribution",
    "InequalityProposition",
    "ModelInputError",
    "Problem",
    "ProbabilityEstimate",
    "UnknownBackendError",
    "compile_problem",
    "config_from_options",
    "constraint_report",
    "hookimpl",
    "installed_backends",
    "load_problem",
    "problem_from_dict",
    "problem_to_dict",
    "register_backend",
    "save_problem",
]
