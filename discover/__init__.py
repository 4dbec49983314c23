"""discover: autonomous neural-architecture discovery."""

__version__ = "0.1.0"
