"""Registry and builder, exercised with an in-test backend (no real backend needed)."""

import numpy as np
import pytest

from calibrated_response_plugins import (
    BackendOutputError,
    DistributionBuilder,
    UnknownBackendError,
    hookimpl,
)
from calibrated_response_plugins.registry import _unknown_backend, load_backend, register_backend, unregister_backend
from calibrated_response_plugins.testing import CONFORMANCE_PROBLEM, INFO_KEYS, UniformBackend


@pytest.fixture
def uniform_backend():
    register_backend("uniform", UniformBackend())
    try:
        yield "uniform"
    finally:
        unregister_backend("uniform")


def builder(backend, **kwargs):
    return DistributionBuilder(CONFORMANCE_PROBLEM["variables"], CONFORMANCE_PROBLEM["estimates"],
                               backend=backend, **kwargs)


def test_build_returns_histogram_and_info(uniform_backend):
    histogram, info = builder(uniform_backend).build(progress=False)
    assert info["target_variable"] == "festival"
    np.testing.assert_allclose(histogram.bin_probabilities, [0.5, 0.5])
    for key in INFO_KEYS:
        assert key in info
    assert info["n_factors"] == 5
    report = {row["id"]: row for row in info["constraint_report"]}
    # Under the uniform joint: P(rain) = 0.5, E[temperature] = 20, P(festival | rain) = 0.5.
    assert report["p_rain"]["fitted"] == pytest.approx(0.5)
    assert report["e_temp"]["fitted"] == pytest.approx(20.0)
    assert report["e_temp"]["residual"] == pytest.approx(-2.0)
    assert report["p_fest_rain"]["fitted"] == pytest.approx(0.5)
    marginals = builder(uniform_backend).get_all_marginals(info)
    assert set(marginals) == {"festival", "rain", "temperature"}


def test_config_options_are_validated(uniform_backend):
    assert builder(uniform_backend, config={"max_bins": 5}).build(progress=False)[1]["bin_edges_list"][2][-1] == 40
    with pytest.raises(ValueError, match="unknown CoreConfig option"):
        builder(uniform_backend, config={"max_binz": 5})
    with pytest.raises(ValueError, match="max_bins"):
        builder(uniform_backend, config={"max_bins": 0})


def test_unknown_target_lists_the_names(uniform_backend):
    with pytest.raises(ValueError, match="unknown target_variable 'snow'.*festival.*rain.*temperature"):
        builder(uniform_backend).build(target_variable="snow")


def test_unknown_backend_lists_installed_and_install_command(uniform_backend):
    with pytest.raises(UnknownBackendError, match="unknown backend 'pgmaxx'; installed backends: .*uniform"):
        builder("pgmaxx")
    message = str(_unknown_backend("smm"))
    assert message.endswith("install it with: pip install calibrated-response-smm")


def test_misspelt_hook_fails_loudly():
    class Misspelt:
        @hookimpl
        def fitt(self, model, config, progress):
            return None

    register_backend("misspelt", Misspelt())
    try:
        with pytest.raises(Exception, match="unknown hook 'fitt'"):
            load_backend("misspelt")
    finally:
        unregister_backend("misspelt")


def test_nan_marginal_from_a_backend_is_an_error():
    register_backend("broken", UniformBackend({"rain": np.array([np.nan, 1.0])}))
    try:
        with pytest.raises(BackendOutputError, match="'broken'.*'rain'"):
            builder("broken").build(progress=False)
    finally:
        unregister_backend("broken")
