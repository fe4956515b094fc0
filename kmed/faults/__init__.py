"""Fault injection for kmed's links (issue 8, "Network faults"; docs/faults.md).

- :mod:`kmed.faults.framing`: message boundaries of the Diameter and UE links (sans-I/O);
- :mod:`kmed.faults.policy`: per-message decisions from rates and a seeded RNG (sans-I/O);
- :mod:`kmed.faults.proxy`: the asyncio proxy; :mod:`kmed.faults.cli`: ``kmed faults``;
- :mod:`kmed.faults.lab`, :mod:`kmed.faults.convergence`: a lab behind proxies, fault runs
  with daemon kills, and the convergence checks (used by tests/faults and ``kmed bench faults``).
"""
