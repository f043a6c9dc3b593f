"""How far an estimate can be trusted — numpy only, never importing the study layer.

``reliability`` (split-half curves, held-out Spearman), ``bootstrap`` (Figure 8), ``fdr`` (knockoffs,
Figure 30; Benjamini–Hochberg) and ``simulate`` (studies with known ground truth, to check them).
"""
