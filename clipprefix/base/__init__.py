"""The foundation every layer stands on: errors, paths, atomic files, the Hub, thread limits."""
__version__ = "0.1.0"
