"""PGMax backend for calibrated-response: moment matching with belief-propagation marginals.

Importing this package is cheap: JAX and PGMax load only when a model is
compiled (see :mod:`calibrated_response_pgmax.plugin`).
"""

from calibrated_response_pgmax.config import PgmaxConfig

__all__ = ["PgmaxConfig"]
__version__ = "0.1.0"
