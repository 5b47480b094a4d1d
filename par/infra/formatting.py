"""Number formatting shared by the Markdown and HTML tables (par.results.tables, par.paper.render, par.paper.ablations).

Imports nothing heavy."""
from __future__ import annotations

import math


def format_number(value, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or "–" for a missing value (None or NaN)."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
