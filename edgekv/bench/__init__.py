"""The latency harness behind ``edgekv bench``.

Theory of operation: :mod:`edgekv.bench.loadgen` is the open-loop generator
(schedules, HdrHistograms, worker processes); :mod:`edgekv.bench.scenarios`
names what one call is and starts the servers it goes to
(:mod:`edgekv.bench.servers`, which also holds the no-op floor server run as
``python -m edgekv.bench.servers``); :mod:`edgekv.bench.runner` runs scenarios,
sweeps and closed loops and writes a results folder, drawn by
:mod:`edgekv.bench.plots`; :mod:`edgekv.bench.resources` measures memory and
CPU rather than latency. It lives inside the ``edgekv`` package so that an
installed ``edgekv`` carries it under its own name.
"""
