"""Consistency experiments: workloads, histories, checkers, theory, results and plots.

Theory of operation: an experiment plans a seeded, open-loop workload
(:mod:`.workload`), drives a cluster with it and records every operation
(:mod:`.driver`, :mod:`.history`), then judges the history with pure checkers
(:mod:`.checkers`) and compares what it measured with docs/design.md's formulas
(:mod:`.theory`). Everything it learns is written to a results folder
(:mod:`.results`) from which :mod:`.plots` and ``edgekv report`` redraw it.
"""
