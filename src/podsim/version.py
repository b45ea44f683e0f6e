"""The package version, recorded in every result so that it can be re-run."""

__version__ = "0.1.0"
