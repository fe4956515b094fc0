"""The E-UTRAN vectors of an AIA (TS 33.401 §6.1.2, A.2), bound to a KME when the seed asks
(docs/protocol.md: KASME' = KDF(KASME, KME)), as a job the group-commit writer can run.

With the writer in a child process (``[store] writer = "process"``) the handlers do not make
the vectors on the event loop: they reserve the SQNs, queue a :class:`VectorJob` after the
request's store writes, and the child makes the vectors once those writes are committed
(MILENAGE, RAND and the KDF are ~15 µs of the ~110 µs the loop spent per AIR). The answer is
built on the loop from what comes back. The same :func:`make_vectors` runs on the loop with
the writer thread (the GIL would gain nothing from moving it) and in the handlers' tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kmed.crypto import aka
from kmed.crypto import kme as kmefn

#: One E-UTRAN-Vector's values: (Item-Number, RAND, XRES, AUTN, KASME, KME-Binding).
Vector = tuple[int, bytes, bytes, bytes, bytes, int]


def make_vectors(k: bytes, opc: bytes, amf: bytes, plmn: bytes, sqns: Sequence[int], bind_key: bytes | None,
                 binding: int) -> list[Vector]:
    """One vector per SQN, numbered from 1; KASME bound to ``bind_key`` unless it is None."""
    out: list[Vector] = []
    for i, sqn in enumerate(sqns, 1):
        v = aka.generate_eutran_vector(k, opc, sqn, amf, plmn)
        kasme = v.kasme if bind_key is None else kmefn.bound_kasme(v.kasme, bind_key)
        out.append((i, v.rand, v.xres, v.autn, kasme, binding))
    return out


@dataclass(slots=True)
class VectorJob:
    """The vectors of one AIR, to be made by the writer after the request's store writes are
    committed; its result (the list of :data:`Vector`) takes the job's place among the
    commit's flags. Holds K and OPc: its ``repr`` never shows them."""

    imsi: str
    k: bytes
    opc: bytes
    amf: bytes
    plmn: bytes
    sqns: list[int]
    bind_key: bytes | None
    binding: int

    def run(self) -> list[Vector]:
        return make_vectors(self.k, self.opc, self.amf, self.plmn, self.sqns, self.bind_key, self.binding)

    def __repr__(self) -> str:
        return f"VectorJob(imsi={self.imsi}, sqns={self.sqns}, <keys redacted>)"
