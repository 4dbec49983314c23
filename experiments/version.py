"""discover's version, here at the bottom of the stack so that code running inside a sandbox job
(which records it in every result) never imports the command-line package above it."""

VERSION = "0.1.0"  # the same as pyproject.toml's
