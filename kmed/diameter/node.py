"""The local Diameter node and what we learn about a remote peer (RFC 6733 §5.3, §3).

:class:`LocalNode` holds this node's identity as advertised in CER/CEA and generates
end-to-end identifiers; :class:`PeerInfo` is what a remote peer told us in its CER or CEA.
Both are plain data, shared by the sans-I/O peer state machine and the asyncio edges.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kmed import __version__
from kmed.diameter.dictionary import APP_S6A, VENDOR_3GPP, VENDOR_KMED

#: RFC 6733 §2.4: the relay application id, which matches every application.
APP_RELAY = 0xFFFFFFFF


def _firmware_revision(version: str) -> int:
    """``0.1.0`` -> 100 (Firmware-Revision is an Unsigned32, RFC 6733 §5.3.4)."""
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


@dataclass(frozen=True, slots=True)
class BaseMessageEvent:
    """A base-protocol message (RFC 6733 §5: CER/CEA, DWR/DWA, DPR/DPA) sent or received by
    one of the node's connections, as :attr:`LocalNode.base_message_hook` sees it."""

    message: str  # "CER", "CEA", "DWR", "DWA", "DPR", "DPA"
    sent: bool  # True: this node sent it; False: it was received
    peer: str | None  # the remote Origin-Host when known (from its CER/CEA), else None
    address: tuple[str, int] | None  # the connection's remote transport address
    result_code: int | None = None  # an answer's Result-Code (None for requests or when absent)
    transport: str = "tcp"  # the connection's transport: "tcp", "tls" or "sctp"


#: What :attr:`LocalNode.base_message_hook` is called with: one :class:`BaseMessageEvent`.
BaseMessageHook = Callable[[BaseMessageEvent], None]


@dataclass(eq=False)
class LocalNode:
    """This node's identity (CER/CEA content, RFC 6733 §5.3.1) and its end-to-end id source.

    ``auth_application_ids`` lists the applications we serve; those found in
    ``application_vendors`` are advertised inside a Vendor-Specific-Application-Id with that
    vendor (S6a: vendor 10415, TS 29.272 §7.1.8), the others as bare Auth-Application-Id.
    ``host_ip_addresses`` empty means "the local address of each connection".
    ``base_message_hook``, when set, is called with a :class:`BaseMessageEvent` for every
    CER/CEA, DWR/DWA, DPR/DPA any connection of this node sends or receives (metrics; it must
    be quick and must not raise: an exception is counted in ``Peer.hook_errors`` and dropped).
    """

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[str, ...] = ()
    vendor_id: int = VENDOR_KMED
    product_name: str = "kmed"
    auth_application_ids: tuple[int, ...] = (APP_S6A,)
    application_vendors: Mapping[int, int] = field(default_factory=lambda: {APP_S6A: VENDOR_3GPP})
    supported_vendor_ids: tuple[int, ...] = (VENDOR_3GPP, VENDOR_KMED)
    firmware_revision: int = _firmware_revision(__version__)
    #: RFC 6733 §8.16: changes whenever the node restarts; boot time in seconds is the usual choice.
    origin_state_id: int = field(default_factory=lambda: int(time.time()) & 0xFFFFFFFF)
    rng: random.Random = field(default_factory=random.SystemRandom, repr=False)
    base_message_hook: BaseMessageHook | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.host_ip_addresses = tuple(self.host_ip_addresses)
        self.auth_application_ids = tuple(self.auth_application_ids)
        # RFC 6733 §3: "the high order 12 bits contain the low order 12 bits of current time,
        # and the low order 20 bits to a random value"; then incremented.
        self._e2e_high = (self.origin_state_id & 0xFFF) << 20
        self._e2e_low = self.rng.getrandbits(20)

    @functools.cached_property
    def origin_items(self) -> tuple[tuple[str, str], ...]:
        """Origin-Host and Origin-Realm as message items (RFC 6733 §6.3, §6.4): what every
        message this node originates carries."""
        return (("Origin-Host", self.origin_host), ("Origin-Realm", self.origin_realm))

    @functools.cached_property
    def origin_fill(self) -> dict[int, bytes]:
        """:attr:`origin_items` encoded, as ``{AVP code: encoded AVP}``: the ``fill`` of
        :func:`kmed.diameter.peer.fill_missing`."""
        from kmed.diameter.codec import encoded_avps

        return encoded_avps(self.origin_items)

    @functools.cached_property
    def origin_avps(self) -> bytes:
        """:attr:`origin_fill`'s AVPs in one piece. An answer that carries these octets as one
        of its items is sent as it is; otherwise the peer layer looks for the two AVPs in the
        encoded answer and adds the missing ones."""
        return b"".join(self.origin_fill.values())

    def next_end_to_end(self) -> int:
        """A fresh End-to-End Identifier (RFC 6733 §3), unique over ~4 minutes at 4k/s."""
        self._e2e_low = (self._e2e_low + 1) & 0xFFFFF
        return self._e2e_high | self._e2e_low

    def supports(self, application_id: int) -> bool:
        """True for our advertised applications (the base protocol, 0, is the peer layer's)."""
        return application_id in self.auth_application_ids


@dataclass(frozen=True)
class PeerInfo:
    """A remote peer as its CER (we are the responder) or CEA (we initiated) described it."""

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[str, ...] = ()
    vendor_id: int = 0
    product_name: str = ""
    origin_state_id: int | None = None
    firmware_revision: int | None = None
    auth_application_ids: frozenset[int] = frozenset()
    acct_application_ids: frozenset[int] = frozenset()
    supported_vendor_ids: frozenset[int] = frozenset()
    #: Transport address of the connection, ``(host, port)``; ``None`` in sans-I/O tests.
    remote_address: tuple[str, int] | None = None

    @property
    def applications(self) -> frozenset[int]:
        """Every application id the peer advertised (auth and acct, plain or vendor-specific)."""
        return self.auth_application_ids | self.acct_application_ids
