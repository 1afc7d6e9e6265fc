"""The package version, at the bottom so that every stage can record it without importing the package."""
__version__ = "0.1.0"
