"""The study runner: data views → store → pending runs → executor → consolidation, with stop rules,
progress and design pilots (``plan``)."""
