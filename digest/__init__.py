"""paper-digest: the day's trending research papers, by email and feed, to the people who asked."""

__version__ = "0.1.0"
