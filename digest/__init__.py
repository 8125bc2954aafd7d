"""paper-digest: the day's trending research papers, by email and feed, to the people who asked."""

__version__ = "0.1.0"

#: The cyclic collector's thresholds for the ``digest`` command and its worker processes.
#: A run keeps large, long-lived indexes and caches and allocates millions of small objects:
#: the default thresholds made the collector rescan them ~5,000 times per 10,000 digests (5%
#: of the run). Our data has few cycles: collect less often.
GC_THRESHOLDS = (50_000, 20, 20)
