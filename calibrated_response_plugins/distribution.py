"""Histogram marginals: the distribution every backend returns.

:class:`HistogramDistribution` mirrors the upstream
``calibrated_response.models.distribution.HistogramDistribution`` (same
field names and method semantics) as a frozen attrs class over read-only
float64 arrays. Mass is uniform inside each bin, so the CDF is piecewise
linear and quantiles interpolate linearly within a bin.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

#: Negative probabilities above this are floating-point noise and clipped to 0.
NEGATIVE_TOLERANCE = 1e-12
#: Largest accepted deviation of the probability sum from 1.
SUM_TOLERANCE = 1e-6


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _as_float_vector(value: Any, field: str) -> np.ndarray:
    """Convert ``value`` to a new 1-D float64 array, naming ``field`` on failure."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{field} must be a sequence of numbers: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{field} must be 1-D, got shape {array.shape}")
    return array


def _convert_edges(value: Any) -> np.ndarray:
    edges = _as_float_vector(value, "bin_edges")
    if edges.shape[0] < 2:
        raise ValueError(f"bin_edges needs at least 2 edges, got {edges.shape[0]}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"bin_edges must be finite, got {edges.tolist()}")
    if not np.all(np.diff(edges) > 0):
        raise ValueError(f"bin_edges must be strictly increasing, got {edges.tolist()}")
    return _read_only(edges)


def _convert_probabilities(value: Any) -> np.ndarray:
    probs = _as_float_vector(value, "bin_probabilities")
    if probs.shape[0] < 1:
        raise ValueError("bin_probabilities must not be empty")
    if not np.all(np.isfinite(probs)):
        raise ValueError(f"bin_probabilities must be finite, got {probs.tolist()}")
    if np.any(probs <= -NEGATIVE_TOLERANCE):
        raise ValueError(f"bin_probabilities must be >= 0, got minimum {probs.min()!r}")
    probs = np.clip(probs, 0.0, None)
    total = float(probs.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"bin_probabilities must sum to 1 (within {SUM_TOLERANCE:g}), got {total!r}")
    return _read_only(probs / total)


@attrs.frozen(eq=False)
class HistogramDistribution:
    """A distribution given by bin edges and the probability mass of each bin.

    :param bin_edges: ``n + 1`` finite, strictly increasing edges.
    :param bin_probabilities: ``n`` non-negative masses summing to 1 (within
        1e-6; they are renormalised exactly, and negatives above -1e-12 are
        clipped to 0).

    Both are stored as read-only float64 arrays.
    """

    bin_edges: np.ndarray = attrs.field(converter=_convert_edges)
    bin_probabilities: np.ndarray = attrs.field(converter=_convert_probabilities)

    @bin_probabilities.validator
    def _check_lengths(self, attribute, value):
        if self.bin_edges.shape[0] != value.shape[0] + 1:
            raise ValueError(
                f"bin_edges has {self.bin_edges.shape[0]} edges, expected "
                f"len(bin_probabilities) + 1 = {value.shape[0] + 1}"
            )

    # ------------------------------------------------------------------ shape

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.bin_probabilities.shape[0])

    @property
    def bin_centers(self) -> np.ndarray:
        """Midpoint of each bin."""
        return (self.bin_edges[:-1] + self.bin_edges[1:]) / 2.0

    @property
    def bin_widths(self) -> np.ndarray:
        """Width of each bin."""
        return np.diff(self.bin_edges)

    def _cumulative(self) -> np.ndarray:
        """CDF at each edge: ``n + 1`` values from exactly 0 to exactly 1."""
        cumulative = np.concatenate(([0.0], np.cumsum(self.bin_probabilities)))
        cumulative[-1] = 1.0
        return np.minimum(cumulative, 1.0)

    # ------------------------------------------------------------- moments

    def mean(self) -> float:
        """Mean, taking each bin's mass at its centre (``sum centre * p``)."""
        return float(np.dot(self.bin_centers, self.bin_probabilities))

    def variance(self) -> float:
        """Variance: between-bin spread of the centres plus within-bin ``w**2 / 12``."""
        deviation = self.bin_centers - self.mean()
        between = np.dot(self.bin_probabilities, deviation**2)
        within = np.dot(self.bin_probabilities, self.bin_widths**2) / 12.0
        return float(between + within)

    def std(self) -> float:
        """Standard deviation, the square root of :meth:`variance`."""
        return float(np.sqrt(self.variance()))

    def entropy(self) -> float:
        """Differential entropy of the piecewise-uniform density: ``-sum p log(p / w)`` over ``p > 0``."""
        mask = self.bin_probabilities > 0
        p = self.bin_probabilities[mask]
        return float(-np.sum(p * np.log(p / self.bin_widths[mask])))

    # --------------------------------------------------- cdf and quantiles

    def cdf(self, x):
        """``P(X <= x)``: piecewise linear, 0 below the first edge, 1 above the last.

        :param x: a number or an array of numbers.
        :returns: a float for a scalar ``x``, else an array of ``x``'s shape.
        """
        values = np.interp(np.asarray(x, dtype=np.float64), self.bin_edges, self._cumulative())
        return float(values) if np.ndim(values) == 0 else values

    def quantile(self, q):
        """The ``q``-th quantile, interpolating linearly inside the bin where the CDF reaches ``q``.

        As upstream, the quantile is taken in the first bin whose cumulative
        mass reaches ``q``; ``quantile(0)`` is the first edge.

        :param q: a number or an array of numbers in [0, 1].
        :returns: a float for a scalar ``q``, else an array of ``q``'s shape.
        :raises ValueError: if any ``q`` is outside [0, 1] or not finite.
        """
        levels = np.asarray(q, dtype=np.float64)
        if not np.all((levels >= 0.0) & (levels <= 1.0)):
            raise ValueError(f"quantile level q must be in [0, 1], got {q!r}")
        cumulative = self._cumulative()
        index = np.searchsorted(cumulative[1:], levels, side="left")
        index = np.minimum(index, self.n_bins - 1)
        mass = self.bin_probabilities[index]
        safe_mass = np.where(mass > 0, mass, 1.0)
        fraction = np.where(mass > 0, (levels - cumulative[index]) / safe_mass, 0.0)
        fraction = np.clip(fraction, 0.0, 1.0)
        values = self.bin_edges[index] + fraction * self.bin_widths[index]
        return float(values) if np.ndim(values) == 0 else values

    def median(self) -> float:
        """The 0.5 quantile."""
        return self.quantile(0.5)

    def prob_greater_than(self, threshold):
        """``P(X > threshold) = 1 - cdf(threshold)``."""
        return 1.0 - self.cdf(threshold)

    def prob_less_than(self, threshold):
        """``P(X < threshold) = cdf(threshold)`` (the density has no atoms)."""
        return self.cdf(threshold)

    # ------------------------------------------------------------ sampling

    def sample(self, n: int = 1, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw ``n`` samples: a bin by its probability, then uniformly inside it.

        :param n: number of samples (>= 0).
        :param rng: a :class:`numpy.random.Generator`, an integer seed, or None
            for fresh entropy.
        :returns: a float64 array of shape ``(n,)``.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        generator = np.random.default_rng(rng)
        index = generator.choice(self.n_bins, size=int(n), p=self.bin_probabilities)
        offsets = generator.random(int(n))
        return self.bin_edges[index] + offsets * self.bin_widths[index]

    # ------------------------------------------------------------- summary

    def summary(self) -> dict[str, float]:
        """``{"mean", "std", "median", "q10", "q90"}`` as floats."""
        return {
            "mean": self.mean(),
            "std": self.std(),
            "median": self.median(),
            "q10": self.quantile(0.1),
            "q90": self.quantile(0.9),
        }

    def to_dict(self) -> dict[str, list[float]]:
        """The fields as plain lists, ready for JSON."""
        return {
            "bin_edges": self.bin_edges.tolist(),
            "bin_probabilities": self.bin_probabilities.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistogramDistribution:
        """Inverse of :meth:`to_dict`."""
        return cls(bin_edges=data["bin_edges"], bin_probabilities=data["bin_probabilities"])

    # ------------------------------------------------------- constructors

    @classmethod
    def uniform(cls, lower: float, upper: float, n_bins: int = 50) -> HistogramDistribution:
        """Equal mass in ``n_bins`` equal bins over ``[lower, upper]``."""
        _check_n_bins(n_bins)
        edges = np.linspace(lower, upper, n_bins + 1)
        return cls(bin_edges=edges, bin_probabilities=np.full(n_bins, 1.0 / n_bins))

    @classmethod
    def from_samples(
        cls,
        samples,
        n_bins: int = 50,
        lower: float | None = None,
        upper: float | None = None,
    ) -> HistogramDistribution:
        """Histogram of ``samples`` in ``n_bins`` equal bins over ``[lower, upper]``.

        ``lower``/``upper`` default to the sample minimum/maximum; samples
        outside the range are ignored. If the range is a single point, numpy's
        convention widens it to ``[x - 0.5, x + 0.5]``.

        :raises ValueError: if there are no finite samples, or none in range.
        """
        _check_n_bins(n_bins)
        values = np.asarray(samples, dtype=np.float64).ravel()
        if values.size == 0:
            raise ValueError("samples must not be empty")
        if not np.all(np.isfinite(values)):
            raise ValueError("samples must be finite")
        low = float(values.min()) if lower is None else float(lower)
        high = float(values.max()) if upper is None else float(upper)
        if not low <= high:
            raise ValueError(f"lower must not exceed upper, got lower={low!r}, upper={high!r}")
        counts, edges = np.histogram(values, bins=n_bins, range=(low, high))
        total = counts.sum()
        if total == 0:
            raise ValueError(f"no samples fall inside [{low!r}, {high!r}]")
        return cls(bin_edges=edges, bin_probabilities=counts / total)


def _check_n_bins(n_bins: Any) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
