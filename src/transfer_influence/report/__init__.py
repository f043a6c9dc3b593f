"""The report: ``tables`` (CSV, no matplotlib), ``plots`` (figures), ``page`` (HTML), ``build`` (all)."""
