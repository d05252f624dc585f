"""Exact dense maximum-entropy backend for calibrated-response plugins.

Importing the package is light: the solver (numpy/scipy work) lives in
:mod:`calibrated_response_maxent.solver` and is loaded when a hook first needs it.
"""

from calibrated_response_maxent.config import MaxentConfig

__all__ = ["MaxentConfig"]
__version__ = "0.1.0"
