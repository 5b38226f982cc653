"""linkcert: automatic HTTPS for customers' link tracking domains."""

__version__ = "0.1.0"
