"""What a study's influences say: rankings, baselines, the look-alike check and the diagnostics of
one study (the evaluate layer applied to its results, design blocks and knockoffs)."""
