"""S6a answer pieces compiled once (TS 29.272), for the handlers that send them per request.

- :func:`answer_head`: the AVPs every S6a answer of a node starts with (Vendor-Specific-
  Application-Id, Result-Code, Auth-Session-State), encoded once per result;
- :func:`authentication_info`: the Authentication-Info AVP of an AIA (§7.3.17) holding
  E-UTRAN-Vectors (§7.3.18: Item-Number, RAND, XRES, AUTN, KASME) with kmed's KME-Binding,
  through an :class:`~kmed.diameter.template.AvpTemplate`.

Both return encoded AVPs: items for :meth:`Message.answer_to` next to ``LocalNode.origin_avps``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from kmed.diameter import dictionary as d
from kmed.diameter.codec import encode_avps
from kmed.diameter.template import FIELD, AvpTemplate, Field

__all__ = ["VSAI", "answer_head", "authentication_info"]

#: TS 29.272 §7.1.8 / RFC 6733 §6.11: S6a is advertised with the 3GPP vendor id.
VSAI = ("Vendor-Specific-Application-Id", [("Vendor-Id", d.VENDOR_3GPP), ("Auth-Application-Id", d.APP_S6A)])

_VECTOR_FIELDS = [("Item-Number", FIELD), ("RAND", Field(16)), ("XRES", Field(8)), ("AUTN", Field(16)),
                  ("KASME", Field(32)), ("KME-Binding", FIELD)]
_VECTOR = AvpTemplate([("E-UTRAN-Vector", _VECTOR_FIELDS)])
_ONE_VECTOR = AvpTemplate([("Authentication-Info", [("E-UTRAN-Vector", _VECTOR_FIELDS)])])

#: One vector's values, in template order: Item-Number, RAND, XRES, AUTN, KASME, KME-Binding.
Vector = tuple[int, bytes, bytes, bytes, bytes, int]


@functools.lru_cache(maxsize=64)
def answer_head(result_code: int | None = d.DIAMETER_SUCCESS) -> bytes:
    """Vendor-Specific-Application-Id, Result-Code (left out when None), Auth-Session-State
    NO_STATE_MAINTAINED (TS 29.272 §7.2: S6a is stateless), encoded."""
    rc = [] if result_code is None else [("Result-Code", result_code)]
    return encode_avps([VSAI, *rc, ("Auth-Session-State", d.AUTH_SESSION_STATE_NO_STATE_MAINTAINED)])


def authentication_info(vectors: Sequence[Vector]) -> bytes:
    """Authentication-Info with one E-UTRAN-Vector per entry of ``vectors``, encoded. Values of
    other sizes than the usual (an XRES of 4 to 16 octets, TS 33.102 §6.3.7) encode too."""
    if len(vectors) == 1:
        return _ONE_VECTOR.encode(*vectors[0])
    return encode_avps([("Authentication-Info", [_VECTOR.encode(*v) for v in vectors])])
