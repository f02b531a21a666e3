"""Tables (Markdown, CSV, JSON) and plots (PNG) from a study's ledger records."""
from .tables import build_tables
from .write import write_report

__all__ = ["build_tables", "write_report"]
