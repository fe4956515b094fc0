#!/usr/bin/env python3
"""Run ``kmed bench crypto`` as a script: ``tools/bench/crypto.py [--iterations N]``."""
import sys

from kmed.bench.crypto import main

sys.exit(main(sys.argv[1:]))
