"""Shipped manifest policies (TOML): the default and two examples; see the README."""
