"""Named configs (YAML) for ``--preset``."""
