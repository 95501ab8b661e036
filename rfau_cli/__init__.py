"""rfau: make a trained classifier forget, and show that it did."""

__version__ = "0.1.0"
