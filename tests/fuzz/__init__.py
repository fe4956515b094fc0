"""Structure-aware fuzzing (hypothesis) of the decoders and of both daemons' request handling.

Bounded for CI and reproducible (``tests/fuzz/budget.py``); ``tools/fuzz/long.sh`` runs the
same tests longer with fresh random examples, and ``tools/fuzz/`` has atheris harnesses.
Every crash ever found is kept, with its exact bytes, in ``test_regressions.py``.
"""
