"""The bundled presets: every ``<name>.toml`` in this folder (``quick``, ``paper``, and the
non-stationary scenarios ``seasonal`` and ``regime``).

Adding a preset is adding its TOML file here; the CLI and :func:`read_preset` find it by name.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

PRESETS = tuple(sorted(entry.name.removesuffix(".toml") for entry in resources.files(__name__).iterdir()
                       if entry.name.endswith(".toml")))


def read_preset(name_or_path: str | Path) -> dict[str, Any]:
    """The raw TOML of a bundled preset (by name) or of a TOML file (by path).

    Raises:
        ValueError: If the name is unknown, the file is missing, or the TOML is malformed.
    """
    text: str
    if str(name_or_path) in PRESETS:
        text = resources.files(__name__).joinpath(f"{name_or_path}.toml").read_text()
        where = f"preset {name_or_path!r}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"preset must be one of {list(PRESETS)} or a TOML file, got {str(name_or_path)!r}")
        text, where = path.read_text(), str(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{where}: malformed TOML: {error}") from None
