"""report.json and what is derived from it: the figures, merging several runs, report.md and the plots."""
