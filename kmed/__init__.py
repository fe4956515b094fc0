"""kmed: lab daemons for USIM-to-device binding with a device key KME.

Network functions (``kmed.hss``, ``kmed.cnn``, ``kmed.ue``, ``kmed.load``) sit on shared
protocol and crypto packages (``kmed.diameter``, ``kmed.nas``, ``kmed.crypto``).
"""

__version__ = "0.1.0"
