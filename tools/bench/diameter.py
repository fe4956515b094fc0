#!/usr/bin/env python3
"""Run ``kmed bench diameter`` as a script: ``tools/bench/diameter.py [--requests N] [--mode MODE]``."""
import sys

from kmed.bench.diameter import main

sys.exit(main(sys.argv[1:]))
