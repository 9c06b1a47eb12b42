"""The configuration: the typed Config, its per-method defaults and its checks."""

from a3c_jax.config.schema import Config, Resolved
from a3c_jax.config.defaults import resolve

__all__ = ["Config", "Resolved", "resolve"]
