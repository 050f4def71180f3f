"""The report stage: a recorded clustering run -> a self-contained HTML folder."""

from imgatlas.report._report import write_comparison, write_report

__all__ = ["write_comparison", "write_report"]
