"""The configuration: the typed Config, its per-method defaults and its checks."""
