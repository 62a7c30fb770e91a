"""The validated config tree and how it is resolved from recipes, files, ``--set`` and flags."""

from dltool.config.loading import Source, load_config, resolve_source
from dltool.config.schema import Config
from dltool.config.validate import validate_config

__all__ = ["Config", "Source", "load_config", "resolve_source", "validate_config"]
