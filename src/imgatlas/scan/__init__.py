"""Folders -> catalog rows: discovery, content hash, probe, incremental re-scan."""

from imgatlas.scan._probe import ProbeResult, probe
from imgatlas.scan._scan import scan_directory
from imgatlas.scan._walk import IMAGE_EXTENSIONS, Found, walk

__all__ = ["IMAGE_EXTENSIONS", "Found", "ProbeResult", "probe", "scan_directory", "walk"]
