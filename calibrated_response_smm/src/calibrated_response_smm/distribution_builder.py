"""``DistributionBuilder`` fixed to the ``smm`` backend (the core builder's API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from calibrated_response_plugins.builder import DistributionBuilder as CoreDistributionBuilder


class DistributionBuilder(CoreDistributionBuilder):
    """``DistributionBuilder(variables, estimates, config=None)`` with ``backend="smm"``.

    ``build(target_variable=None) -> (HistogramDistribution, info)`` and
    ``get_all_marginals(info)`` behave as in the core builder.
    """

    def __init__(
        self,
        variables: Sequence[Any],
        estimates: Sequence[Any],
        config: Mapping[str, Any] | Any | None = None,
        backend: str = "smm",
    ):
        if backend != "smm":
            raise ValueError(f"this builder is the smm backend's; use calibrated_response_plugins.DistributionBuilder for {backend!r}")
        super().__init__(variables, estimates, backend="smm", config=config)
