"""HistogramDistribution: validation and hand-computed statistics.

The reference histogram has edges [0, 1, 3] and masses [0.25, 0.75]:
centres [0.5, 2], widths [1, 2], CDF at the edges [0, 0.25, 1].
"""

import json
import math

import numpy as np
import pytest

from calibrated_response_plugins.distribution import HistogramDistribution

# Closed-form results are a handful of float64 operations on exact inputs:
# anything beyond a few ulps is a real error.
EXACT = 1e-12


@pytest.fixture
def two_bin():
    return HistogramDistribution(bin_edges=[0.0, 1.0, 3.0], bin_probabilities=[0.25, 0.75])


# ---------------------------------------------------------------- validation


def test_fields_are_read_only_float64_arrays(two_bin):
    for array in (two_bin.bin_edges, two_bin.bin_probabilities):
        assert isinstance(array, np.ndarray)
        assert array.dtype == np.float64
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[0] = 5.0


def test_input_arrays_are_copied():
    edges = np.array([0.0, 1.0, 2.0])
    dist = HistogramDistribution(edges, np.array([0.5, 0.5]))
    edges[0] = -10.0
    assert dist.bin_edges[0] == 0.0
    assert edges.flags.writeable


def test_frozen(two_bin):
    import attrs

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        two_bin.bin_edges = np.array([0.0, 1.0])


@pytest.mark.parametrize(
    ("edges", "probs", "match"),
    [
        ([[0.0, 1.0], [1.0, 2.0]], [0.5, 0.5], "bin_edges must be 1-D"),
        ([0.0], [], "bin_edges needs at least 2"),
        ([0.0, math.inf], [1.0], "bin_edges must be finite"),
        ([0.0, math.nan], [1.0], "bin_edges must be finite"),
        ([0.0, 1.0, 1.0], [0.5, 0.5], "bin_edges must be strictly increasing"),
        ([0.0, 2.0, 1.0], [0.5, 0.5], "bin_edges must be strictly increasing"),
        (["a", "b"], [1.0], "bin_edges must be a sequence of numbers"),
        ([0.0, 1.0, 2.0], [1.0], r"len\(bin_probabilities\) \+ 1"),
        ([0.0, 1.0], [0.5, 0.5], r"len\(bin_probabilities\) \+ 1"),
        ([0.0, 1.0, 2.0], [[0.5, 0.5]], "bin_probabilities must be 1-D"),
        ([0.0, 1.0, 2.0], [0.5, math.nan], "bin_probabilities must be finite"),
        ([0.0, 1.0, 2.0], [1.1, -0.1], "bin_probabilities must be >= 0"),
        ([0.0, 1.0, 2.0], [0.5, 0.6], "bin_probabilities must sum to 1"),
        ([0.0, 1.0, 2.0], [0.0, 0.0], "bin_probabilities must sum to 1"),
    ],
)
def test_invalid_inputs_name_the_field(edges, probs, match):
    with pytest.raises(ValueError, match=match):
        HistogramDistribution(bin_edges=edges, bin_probabilities=probs)


def test_tiny_negative_is_clipped_and_sum_renormalised():
    dist = HistogramDistribution([0.0, 1.0, 2.0, 3.0], [0.5 + 4e-7, -1e-13, 0.5])
    assert dist.bin_probabilities[1] == 0.0
    assert (dist.bin_probabilities >= 0).all()
    # The sum of three floats after dividing by their sum: a couple of ulps.
    assert dist.bin_probabilities.sum() == pytest.approx(1.0, abs=EXACT)
    # 0.5 / (1 + 4e-7), to the same few ulps.
    assert dist.bin_probabilities[2] == pytest.approx(0.5 / (1.0 + 4e-7), abs=EXACT)


def test_sum_just_inside_tolerance_is_accepted():
    dist = HistogramDistribution([0.0, 1.0, 2.0], [0.5, 0.5 + 9e-7])
    assert dist.bin_probabilities.sum() == pytest.approx(1.0, abs=EXACT)


# ---------------------------------------------------------------- statistics


def test_shape_properties(two_bin):
    assert two_bin.n_bins == 2
    np.testing.assert_array_equal(two_bin.bin_centers, [0.5, 2.0])
    np.testing.assert_array_equal(two_bin.bin_widths, [1.0, 2.0])


def test_mean(two_bin):
    # 0.25 * 0.5 + 0.75 * 2 = 1.625
    assert two_bin.mean() == pytest.approx(1.625, abs=EXACT)


def test_variance_and_std(two_bin):
    # between: 0.25 * (0.5 - 1.625)^2 + 0.75 * (2 - 1.625)^2 = 27/64
    # within:  (0.25 * 1^2 + 0.75 * 2^2) / 12 = 13/48
    # total 133/192, also E[X^2] - E[X]^2 of the piecewise-uniform density.
    assert two_bin.variance() == pytest.approx(133 / 192, abs=EXACT)
    assert two_bin.std() == pytest.approx(math.sqrt(133 / 192), abs=EXACT)


def test_cdf_scalar_and_vector(two_bin):
    # Interpolating the edge CDF [0, 0.25, 1] over edges [0, 1, 3].
    assert two_bin.cdf(-1.0) == 0.0
    assert two_bin.cdf(0.0) == 0.0
    assert two_bin.cdf(0.5) == pytest.approx(0.125, abs=EXACT)
    assert two_bin.cdf(1.0) == pytest.approx(0.25, abs=EXACT)
    assert two_bin.cdf(2.0) == pytest.approx(0.625, abs=EXACT)
    assert two_bin.cdf(3.0) == 1.0
    assert two_bin.cdf(10.0) == 1.0
    assert isinstance(two_bin.cdf(0.5), float)
    np.testing.assert_allclose(two_bin.cdf([0.5, 2.0]), [0.125, 0.625], atol=EXACT)


def test_tail_probabilities(two_bin):
    assert two_bin.prob_less_than(2.0) == pytest.approx(0.625, abs=EXACT)
    assert two_bin.prob_greater_than(2.0) == pytest.approx(0.375, abs=EXACT)
    assert two_bin.prob_greater_than(-5.0) == 1.0


def test_quantiles(two_bin):
    # q = 0.1 lies in bin 0: 0 + (0.1 / 0.25) * 1 = 0.4
    assert two_bin.quantile(0.1) == pytest.approx(0.4, abs=EXACT)
    # q = 0.5 lies in bin 1: 1 + ((0.5 - 0.25) / 0.75) * 2 = 5/3
    assert two_bin.quantile(0.5) == pytest.approx(5 / 3, abs=EXACT)
    assert two_bin.median() == pytest.approx(5 / 3, abs=EXACT)
    # q = 0.9: 1 + ((0.9 - 0.25) / 0.75) * 2 = 41/15
    assert two_bin.quantile(0.9) == pytest.approx(41 / 15, abs=EXACT)
    assert two_bin.quantile(0.0) == 0.0
    assert two_bin.quantile(1.0) == pytest.approx(3.0, abs=EXACT)
    assert two_bin.quantile(0.25) == pytest.approx(1.0, abs=EXACT)
    assert isinstance(two_bin.quantile(0.5), float)


def test_quantile_vectorised_matches_scalar(two_bin):
    levels = np.linspace(0.0, 1.0, 11)
    expected = [two_bin.quantile(float(q)) for q in levels]
    # Same arithmetic on the same inputs, element by element.
    np.testing.assert_allclose(two_bin.quantile(levels), expected, atol=EXACT)


def test_quantile_inverts_cdf(two_bin):
    levels = np.linspace(0.01, 0.99, 25)
    # A linear interpolation and its inverse: rounding only.
    np.testing.assert_allclose(two_bin.cdf(two_bin.quantile(levels)), levels, atol=1e-12)


def test_quantile_skips_empty_bins():
    dist = HistogramDistribution([0.0, 1.0, 2.0, 3.0], [0.5, 0.0, 0.5])
    # The CDF reaches 0.5 at the end of bin 0 (first bin to reach it, as upstream).
    assert dist.quantile(0.5) == pytest.approx(1.0, abs=EXACT)
    # 0.75 is halfway through bin 2.
    assert dist.quantile(0.75) == pytest.approx(2.5, abs=EXACT)


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_quantile_rejects_bad_levels(two_bin, q):
    with pytest.raises(ValueError, match="q must be in"):
        two_bin.quantile(q)
    with pytest.raises(ValueError, match="q must be in"):
        two_bin.quantile([0.5, q])


def test_entropy(two_bin):
    # -(0.25 log(0.25 / 1) + 0.75 log(0.75 / 2))
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.375))
    assert two_bin.entropy() == pytest.approx(expected, abs=EXACT)


def test_entropy_ignores_empty_bins():
    dist = HistogramDistribution([0.0, 1.0, 2.0], [1.0, 0.0])
    # Uniform on [0, 1]: differential entropy log(1) = 0.
    assert dist.entropy() == 0.0


def test_summary(two_bin):
    summary = two_bin.summary()
    assert set(summary) == {"mean", "std", "median", "q10", "q90"}
    assert all(isinstance(v, float) for v in summary.values())
    # Same closed forms as above.
    assert summary["mean"] == pytest.approx(1.625, abs=EXACT)
    assert summary["std"] == pytest.approx(math.sqrt(133 / 192), abs=EXACT)
    assert summary["median"] == pytest.approx(5 / 3, abs=EXACT)
    assert summary["q10"] == pytest.approx(0.4, abs=EXACT)
    assert summary["q90"] == pytest.approx(41 / 15, abs=EXACT)


def test_binary_histogram():
    dist = HistogramDistribution([0.0, 0.5, 1.0], [0.3, 0.7])
    # Centres 0.25 / 0.75: mean 0.3 * 0.25 + 0.7 * 0.75 = 0.6
    assert dist.mean() == pytest.approx(0.6, abs=EXACT)
    assert dist.prob_greater_than(0.5) == pytest.approx(0.7, abs=EXACT)


# ------------------------------------------------------------------ sampling


def test_sample_is_reproducible_with_seed_or_generator(two_bin):
    a = two_bin.sample(100, rng=7)
    b = two_bin.sample(100, rng=7)
    c = two_bin.sample(100, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert a.shape == (100,)
    assert a.dtype == np.float64


def test_sample_default_and_empty(two_bin):
    assert two_bin.sample().shape == (1,)
    assert two_bin.sample(0, rng=0).shape == (0,)


@pytest.mark.parametrize("n", [-1, 1.5, True])
def test_sample_rejects_bad_n(two_bin, n):
    with pytest.raises(ValueError, match="n must be"):
        two_bin.sample(n)


def test_sample_matches_bin_masses_and_uniform_within(two_bin):
    n = 200_000
    draws = two_bin.sample(n, rng=np.random.default_rng(0))
    assert draws.min() >= 0.0 and draws.max() <= 3.0
    in_first = draws < 1.0
    # Binomial fraction, sd sqrt(0.25 * 0.75 / n) ~ 0.001: 5 sd.
    assert in_first.mean() == pytest.approx(0.25, abs=0.005)
    # Uniform on [1, 3] has sd 2/sqrt(12) ~ 0.58; ~150k draws: sd of mean ~0.0015, 6 sd.
    assert draws[~in_first].mean() == pytest.approx(2.0, abs=0.01)
    # Overall mean 1.625, sd sqrt(133/192) ~ 0.83 over 200k draws: sd ~0.002, 5 sd.
    assert draws.mean() == pytest.approx(1.625, abs=0.01)


def test_sample_never_lands_in_empty_bin():
    dist = HistogramDistribution([0.0, 1.0, 2.0, 3.0], [0.5, 0.0, 0.5])
    draws = dist.sample(10_000, rng=1)
    assert not np.any((draws > 1.0) & (draws < 2.0))


# ------------------------------------------------------ constructors and I/O


def test_uniform():
    dist = HistogramDistribution.uniform(0.0, 4.0, n_bins=4)
    np.testing.assert_array_equal(dist.bin_edges, [0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(dist.bin_probabilities, [0.25] * 4)
    # Uniform on [0, 4]: mean 2, variance 16/12, entropy log 4.
    assert dist.mean() == pytest.approx(2.0, abs=EXACT)
    assert dist.variance() == pytest.approx(16 / 12, abs=EXACT)
    assert dist.entropy() == pytest.approx(math.log(4.0), abs=EXACT)
    assert HistogramDistribution.uniform(-1.0, 1.0).n_bins == 50


@pytest.mark.parametrize(("lower", "upper", "n_bins"), [(1.0, 1.0, 5), (2.0, 1.0, 5), (0.0, 1.0, 0)])
def test_uniform_rejects_bad_arguments(lower, upper, n_bins):
    with pytest.raises(ValueError):
        HistogramDistribution.uniform(lower, upper, n_bins=n_bins)


def test_from_samples():
    dist = HistogramDistribution.from_samples([0.0, 0.1, 0.9, 1.0], n_bins=2)
    np.testing.assert_array_equal(dist.bin_edges, [0.0, 0.5, 1.0])
    # The maximum falls in the last (closed) bin: counts [2, 2].
    np.testing.assert_array_equal(dist.bin_probabilities, [0.5, 0.5])


def test_from_samples_with_range_ignores_outside():
    dist = HistogramDistribution.from_samples([-5.0, 0.2, 0.3, 0.7, 9.0], n_bins=2, lower=0.0, upper=1.0)
    np.testing.assert_array_equal(dist.bin_edges, [0.0, 0.5, 1.0])
    # In range: 0.2, 0.3 | 0.7 -> [2/3, 1/3], one division each.
    np.testing.assert_allclose(dist.bin_probabilities, [2 / 3, 1 / 3], atol=EXACT)


def test_from_samples_single_value():
    dist = HistogramDistribution.from_samples([2.0, 2.0], n_bins=2)
    # numpy widens a zero-width range to [x - 0.5, x + 0.5].
    np.testing.assert_array_equal(dist.bin_edges, [1.5, 2.0, 2.5])
    assert dist.bin_probabilities.sum() == pytest.approx(1.0, abs=EXACT)


@pytest.mark.parametrize(
    ("samples", "kwargs", "match"),
    [
        ([], {}, "must not be empty"),
        ([0.0, math.nan], {}, "finite"),
        ([5.0, 6.0], {"lower": 0.0, "upper": 1.0}, "no samples"),
        ([0.5], {"lower": 1.0, "upper": 0.0}, "lower must not exceed"),
        ([0.5], {"n_bins": 0}, "n_bins"),
    ],
)
def test_from_samples_rejects_bad_input(samples, kwargs, match):
    with pytest.raises(ValueError, match=match):
        HistogramDistribution.from_samples(samples, **kwargs)


def test_to_dict_round_trips_through_json(two_bin):
    data = two_bin.to_dict()
    assert data == {"bin_edges": [0.0, 1.0, 3.0], "bin_probabilities": [0.25, 0.75]}
    assert all(type(v) is float for v in data["bin_edges"] + data["bin_probabilities"])
    again = HistogramDistribution.from_dict(json.loads(json.dumps(data)))
    np.testing.assert_array_equal(again.bin_edges, two_bin.bin_edges)
    np.testing.assert_array_equal(again.bin_probabilities, two_bin.bin_probabilities)
