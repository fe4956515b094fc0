#!/usr/bin/env python3
"""Run ``kmed bench load`` as a script: ``tools/bench/load.py [--duration S] [--profile DIR] ...``."""
import sys

from kmed.bench.load import main

sys.exit(main(sys.argv[1:]))
