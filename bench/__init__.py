"""sharewall's benchmarks (``scripts/bench``): data plane and control plane, measured as ratios in one run.

Not part of the test suite. Each benchmark builds its own throwaway labs (namespaces ``sw-tb*``), always
removes them, and writes its results to ``bench/results/*.json``.
"""
