"""discover: autonomous neural-architecture discovery."""

from discover.experiments.version import VERSION as __version__

__all__ = ["__version__"]
