"""Overload: the CNN's admission control (EMM #22 with T3346) and the HSS's 3004, sans I/O and
against real daemons; the long measurement is ``kmed bench overload`` (docs/overload.md)."""
