"""The one reader of the project's YAML files (``--config``, pipeline and training configs)."""

from __future__ import annotations

from pathlib import Path


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """The mapping at the top of the YAML file ``path`` (an empty file is ``{}``).

    ``what`` says what the file is (``"pipeline config"``); a missing or unreadable file, bad YAML or
    anything but a mapping raises :class:`ValueError` naming the file.
    """
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read {what} ({error})") from error
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of setting names to values in the {what}")
    return values
