"""The one table of Diameter commands, applications, vendors, AVPs and result codes kmed uses.

Everything about an AVP (name, code, vendor, type, flags, enumerated values) is written here
once; the codec, the Wireshark dictionary (:mod:`kmed.diameter.wireshark`) and docs/s6a.md
follow from it.

Sources:

- RFC 6733 (Diameter base): §3.1 commands, §4.3-4.5 types and base AVPs, §7.1 result codes.
- 3GPP TS 29.272 (S6a/S6d): §7.2 commands, §7.3.1 table 7.3.1/1 (AVP codes, types, flag
  rules: every S6a AVP is "M, V", vendor 10415), §7.4.3/7.4.4 experimental result codes.
- TS 29.229 §6.3 (Supported-Features group: V set, M not set), TS 29.212 §5.3 (QoS AVPs),
  TS 29.214 §5.3 (Max-Requested-Bandwidth-UL/DL), TS 29.329 §6.3.2 (MSISDN),
  RFC 5778 §6.2 (Service-Selection).
- kmed's own AVPs and Experimental-Result codes use vendor 32473, the IANA Private Enterprise
  Number reserved for documentation by RFC 5612 §2, and have the M-bit clear so that standard
  peers and relays ignore them (RFC 6733 §4.1).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# --------------------------------------------------------------------------- vendors, apps

VENDOR_IETF = 0
VENDOR_3GPP = 10415
#: RFC 5612 §2: "the Enterprise Number 32473 ... for use in documentation".
VENDOR_KMED = 32473

VENDORS: Mapping[int, str] = MappingProxyType({
    VENDOR_IETF: "IETF",
    VENDOR_3GPP: "3GPP",
    VENDOR_KMED: "kmed (RFC 5612 documentation PEN)",
})

APP_COMMON = 0  # RFC 6733 §2.4: Diameter common messages
APP_S6A = 16777251  # TS 29.272 §7.1: S6a/S6d interface application

APPLICATIONS: Mapping[int, str] = MappingProxyType({
    APP_COMMON: "Diameter Common Messages",
    APP_S6A: "3GPP S6a/S6d",
})

# --------------------------------------------------------------------------- header flags

#: RFC 6733 §3: command flags.
FLAG_R = 0x80  # request
FLAG_P = 0x40  # proxiable
FLAG_E = 0x20  # error
FLAG_T = 0x10  # potentially retransmitted
FLAGS_RESERVED = 0x0F

#: RFC 6733 §4.1: AVP flags.
AVP_FLAG_V = 0x80
AVP_FLAG_M = 0x40
AVP_FLAG_P = 0x20
AVP_FLAGS_RESERVED = 0x1F


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class CommandDef:
    """One command (RFC 6733 §3.2 CCF): its code, names and the application it belongs to."""

    name: str  # "Authentication-Information"
    code: int
    request: str  # "AIR"
    answer: str  # "AIA"
    application_id: int
    proxiable: bool
    ref: str


COMMANDS: tuple[CommandDef, ...] = (
    CommandDef("Capabilities-Exchange", 257, "CER", "CEA", APP_COMMON, False, "RFC 6733 §5.3"),
    CommandDef("Device-Watchdog", 280, "DWR", "DWA", APP_COMMON, False, "RFC 6733 §5.5"),
    CommandDef("Disconnect-Peer", 282, "DPR", "DPA", APP_COMMON, False, "RFC 6733 §5.4"),
    CommandDef("Update-Location", 316, "ULR", "ULA", APP_S6A, True, "TS 29.272 §7.2.3"),
    CommandDef("Cancel-Location", 317, "CLR", "CLA", APP_S6A, True, "TS 29.272 §7.2.7"),
    CommandDef("Authentication-Information", 318, "AIR", "AIA", APP_S6A, True, "TS 29.272 §7.2.5"),
    CommandDef("Purge-UE", 321, "PUR", "PUA", APP_S6A, True, "TS 29.272 §7.2.13"),
)

CMD_CER = CMD_CEA = 257
CMD_DWR = CMD_DWA = 280
CMD_DPR = CMD_DPA = 282
CMD_ULR = CMD_ULA = 316
CMD_CLR = CMD_CLA = 317
CMD_AIR = CMD_AIA = 318
CMD_PUR = CMD_PUA = 321

COMMANDS_BY_CODE: Mapping[int, CommandDef] = MappingProxyType({c.code: c for c in COMMANDS})


def _command_names() -> dict[str, CommandDef]:
    names: dict[str, CommandDef] = {}
    for c in COMMANDS:
        for n in (c.name, f"{c.name}-Request", f"{c.name}-Answer", c.request, c.answer):
            names[n] = c
    return names


COMMANDS_BY_NAME: Mapping[str, CommandDef] = MappingProxyType(_command_names())


def command(cmd: str | int) -> CommandDef:
    """The command named ``cmd`` ("AIR", "AIA", "Authentication-Information", ...) or with code ``cmd``.

    Raises ``KeyError`` for a command that is not in the table.
    """
    found = COMMANDS_BY_CODE.get(cmd) if isinstance(cmd, int) else COMMANDS_BY_NAME.get(cmd)
    if found is None:
        raise KeyError(f"unknown Diameter command {cmd!r}")
    return found


def command_abbrev(code: int, is_request: bool) -> str:
    """"AIR"/"AIA"-style name of a command, or ``"cmd-<code>"`` when it is not in the table."""
    c = COMMANDS_BY_CODE.get(code)
    if c is None:
        return f"cmd-{code}" + ("-R" if is_request else "-A")
    return c.request if is_request else c.answer


# --------------------------------------------------------------------------- AVP types


class AvpType(enum.Enum):
    """RFC 6733 §4.2 basic and §4.3 derived AVP data formats, as they map to Python."""

    OCTET_STRING = "OctetString"  # bytes
    INTEGER32 = "Integer32"  # int
    INTEGER64 = "Integer64"  # int
    UNSIGNED32 = "Unsigned32"  # int
    UNSIGNED64 = "Unsigned64"  # int
    FLOAT32 = "Float32"  # float
    FLOAT64 = "Float64"  # float
    GROUPED = "Grouped"  # list of (name, value) pairs
    ADDRESS = "Address"  # str: an IPv4 or IPv6 address (family 1 or 2)
    TIME = "Time"  # datetime.datetime (UTC)
    UTF8STRING = "UTF8String"  # str
    DIAMETER_IDENTITY = "DiameterIdentity"  # str
    DIAMETER_URI = "DiameterURI"  # str
    ENUMERATED = "Enumerated"  # int


#: Size of the data of fixed-size types (RFC 6733 §4.2, §4.3.1 Time); a wrong length is 5014.
FIXED_SIZE: Mapping[AvpType, int] = MappingProxyType({
    AvpType.INTEGER32: 4,
    AvpType.INTEGER64: 8,
    AvpType.UNSIGNED32: 4,
    AvpType.UNSIGNED64: 8,
    AvpType.FLOAT32: 4,
    AvpType.FLOAT64: 8,
    AvpType.ENUMERATED: 4,
    AvpType.TIME: 4,
})


@dataclass(frozen=True, slots=True)
class AvpDef:
    """One AVP: what the codec needs (code, vendor, type, flags) and what people read."""

    name: str
    code: int
    vendor: int
    type: AvpType
    mandatory: bool  # M bit set when kmed sends it
    ref: str
    values: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def flags(self) -> int:
        """AVP flags kmed sends: V when there is a vendor, M when the table says so."""
        return (AVP_FLAG_V if self.vendor else 0) | (AVP_FLAG_M if self.mandatory else 0)

    @property
    def key(self) -> int:
        """(vendor, code) packed in one int: the lookup key of :data:`AVPS_BY_KEY`."""
        return avp_key(self.code, self.vendor)


def avp_key(code: int, vendor: int) -> int:
    """Lookup key of an AVP: vendor and code in one int (cheaper to hash than a tuple)."""
    return (vendor << 32) | code


_OS = AvpType.OCTET_STRING
_U32 = AvpType.UNSIGNED32
_U64 = AvpType.UNSIGNED64
_ENUM = AvpType.ENUMERATED
_GRP = AvpType.GROUPED
_UTF8 = AvpType.UTF8STRING
_ID = AvpType.DIAMETER_IDENTITY
_ADDR = AvpType.ADDRESS


def _a(name: str, code: int, vendor: int, type_: AvpType, m: bool, ref: str,
       values: dict[int, str] | None = None) -> AvpDef:
    return AvpDef(name, code, vendor, type_, m, ref, MappingProxyType(values or {}))


_M = True  # M bit set
_NO_M = False  # M bit clear
_G3 = VENDOR_3GPP
_K = VENDOR_KMED

#: RFC 6733 §4.5 base AVPs (all: M must, V must not).
_BASE: tuple[AvpDef, ...] = (
    _a("User-Name", 1, 0, _UTF8, _M, "RFC 6733 §8.14"),
    _a("Proxy-State", 33, 0, _OS, _M, "RFC 6733 §6.7.4"),
    _a("Host-IP-Address", 257, 0, _ADDR, _M, "RFC 6733 §5.3.5"),
    _a("Auth-Application-Id", 258, 0, _U32, _M, "RFC 6733 §6.8"),
    _a("Acct-Application-Id", 259, 0, _U32, _M, "RFC 6733 §6.9"),
    _a("Vendor-Specific-Application-Id", 260, 0, _GRP, _M, "RFC 6733 §6.11"),
    _a("Session-Id", 263, 0, _UTF8, _M, "RFC 6733 §8.8"),
    _a("Origin-Host", 264, 0, _ID, _M, "RFC 6733 §6.3"),
    _a("Supported-Vendor-Id", 265, 0, _U32, _M, "RFC 6733 §5.3.6"),
    _a("Vendor-Id", 266, 0, _U32, _M, "RFC 6733 §5.3.3"),
    _a("Firmware-Revision", 267, 0, _U32, _NO_M, "RFC 6733 §5.3.4 (M must not)"),
    _a("Result-Code", 268, 0, _U32, _M, "RFC 6733 §7.1"),
    _a("Product-Name", 269, 0, _UTF8, _NO_M, "RFC 6733 §5.3.7 (M must not)"),
    _a("Disconnect-Cause", 273, 0, _ENUM, _M, "RFC 6733 §5.4.3",
       {0: "REBOOTING", 1: "BUSY", 2: "DO_NOT_WANT_TO_TALK_TO_YOU"}),
    _a("Auth-Session-State", 277, 0, _ENUM, _M, "RFC 6733 §8.11",
       {0: "STATE_MAINTAINED", 1: "NO_STATE_MAINTAINED"}),
    _a("Origin-State-Id", 278, 0, _U32, _M, "RFC 6733 §8.16"),
    _a("Failed-AVP", 279, 0, _GRP, _M, "RFC 6733 §7.5"),
    _a("Proxy-Host", 280, 0, _ID, _M, "RFC 6733 §6.7.3"),
    _a("Error-Message", 281, 0, _UTF8, _NO_M, "RFC 6733 §7.3 (M must not)"),
    _a("Route-Record", 282, 0, _ID, _M, "RFC 6733 §6.7.1"),
    _a("Destination-Realm", 283, 0, _ID, _M, "RFC 6733 §6.6"),
    _a("Proxy-Info", 284, 0, _GRP, _M, "RFC 6733 §6.7.2"),
    _a("Destination-Host", 293, 0, _ID, _M, "RFC 6733 §6.5"),
    _a("Error-Reporting-Host", 294, 0, _ID, _NO_M, "RFC 6733 §7.4 (M must not)"),
    _a("Origin-Realm", 296, 0, _ID, _M, "RFC 6733 §6.4"),
    _a("Experimental-Result", 297, 0, _GRP, _M, "RFC 6733 §7.6"),
    _a("Experimental-Result-Code", 298, 0, _U32, _M, "RFC 6733 §7.7"),
    _a("Inband-Security-Id", 299, 0, _U32, _M, "RFC 6733 §6.10", {0: "NO_INBAND_SECURITY", 1: "TLS"}),
    _a("Service-Selection", 493, 0, _UTF8, _M, "RFC 5778 §6.2 (APN, TS 29.272 §7.3.36)"),
)

#: TS 29.272 §7.3.1 table 7.3.1/1 (M, V) and the AVPs it reuses from other specifications.
_S6A: tuple[AvpDef, ...] = (
    _a("Max-Requested-Bandwidth-DL", 515, _G3, _U32, _M, "TS 29.214 §5.3.14"),
    _a("Max-Requested-Bandwidth-UL", 516, _G3, _U32, _M, "TS 29.214 §5.3.15"),
    _a("Supported-Features", 628, _G3, _GRP, _NO_M, "TS 29.229 §6.3.29 (V must, M may: sent clear)"),
    _a("Feature-List-ID", 629, _G3, _U32, _NO_M, "TS 29.229 §6.3.30 (V must, M may: sent clear)"),
    _a("Feature-List", 630, _G3, _U32, _NO_M, "TS 29.229 §6.3.31 (V must, M may: sent clear)"),
    _a("MSISDN", 701, _G3, _OS, _M, "TS 29.329 §6.3.2"),
    _a("QoS-Class-Identifier", 1028, _G3, _ENUM, _M, "TS 29.212 §5.3.17",
       {i: f"QCI_{i}" for i in range(1, 10)}),
    _a("RAT-Type", 1032, _G3, _ENUM, _NO_M, "TS 29.212 §5.3.31 (V must, M must not)",
       {0: "WLAN", 1: "VIRTUAL", 1000: "UTRAN", 1001: "GERAN", 1002: "GAN", 1003: "HSPA_EVOLUTION",
        1004: "EUTRAN", 1005: "EUTRAN-NB-IoT"}),
    _a("Allocation-Retention-Priority", 1034, _G3, _GRP, _M, "TS 29.212 §5.3.32"),
    _a("Priority-Level", 1046, _G3, _U32, _M, "TS 29.212 §5.3.45"),
    _a("Pre-emption-Capability", 1047, _G3, _ENUM, _M, "TS 29.212 §5.3.46",
       {0: "PRE-EMPTION_CAPABILITY_ENABLED", 1: "PRE-EMPTION_CAPABILITY_DISABLED"}),
    _a("Pre-emption-Vulnerability", 1048, _G3, _ENUM, _M, "TS 29.212 §5.3.47",
       {0: "PRE-EMPTION_VULNERABILITY_ENABLED", 1: "PRE-EMPTION_VULNERABILITY_DISABLED"}),
    _a("Subscription-Data", 1400, _G3, _GRP, _M, "TS 29.272 §7.3.2"),
    _a("Terminal-Information", 1401, _G3, _GRP, _M, "TS 29.272 §7.3.3"),
    _a("IMEI", 1402, _G3, _UTF8, _M, "TS 29.272 §7.3.4"),
    _a("Software-Version", 1403, _G3, _UTF8, _M, "TS 29.272 §7.3.5"),
    _a("ULR-Flags", 1405, _G3, _U32, _M, "TS 29.272 §7.3.7"),
    _a("ULA-Flags", 1406, _G3, _U32, _M, "TS 29.272 §7.3.8"),
    _a("Visited-PLMN-Id", 1407, _G3, _OS, _M, "TS 29.272 §7.3.9"),
    _a("Requested-EUTRAN-Authentication-Info", 1408, _G3, _GRP, _M, "TS 29.272 §7.3.11"),
    _a("Requested-UTRAN-GERAN-Authentication-Info", 1409, _G3, _GRP, _M, "TS 29.272 §7.3.12"),
    _a("Number-Of-Requested-Vectors", 1410, _G3, _U32, _M, "TS 29.272 §7.3.14"),
    _a("Re-Synchronization-Info", 1411, _G3, _OS, _M, "TS 29.272 §7.3.15"),
    _a("Immediate-Response-Preferred", 1412, _G3, _U32, _M, "TS 29.272 §7.3.16"),
    _a("Authentication-Info", 1413, _G3, _GRP, _M, "TS 29.272 §7.3.17"),
    _a("E-UTRAN-Vector", 1414, _G3, _GRP, _M, "TS 29.272 §7.3.18"),
    _a("UTRAN-Vector", 1415, _G3, _GRP, _M, "TS 29.272 §7.3.19"),
    _a("GERAN-Vector", 1416, _G3, _GRP, _M, "TS 29.272 §7.3.20"),
    _a("Network-Access-Mode", 1417, _G3, _ENUM, _M, "TS 29.272 §7.3.21",
       {0: "PACKET_AND_CIRCUIT", 1: "Reserved", 2: "ONLY_PACKET"}),
    _a("Item-Number", 1419, _G3, _U32, _M, "TS 29.272 §7.3.23"),
    _a("Cancellation-Type", 1420, _G3, _ENUM, _M, "TS 29.272 §7.3.24",
       {0: "MME_UPDATE_PROCEDURE", 1: "SGSN_UPDATE_PROCEDURE", 2: "SUBSCRIPTION_WITHDRAWAL",
        3: "UPDATE_PROCEDURE_IWF", 4: "INITIAL_ATTACH_PROCEDURE"}),
    _a("Context-Identifier", 1423, _G3, _U32, _M, "TS 29.272 §7.3.27"),
    _a("Subscriber-Status", 1424, _G3, _ENUM, _M, "TS 29.272 §7.3.29",
       {0: "SERVICE_GRANTED", 1: "OPERATOR_DETERMINED_BARRING"}),
    _a("All-APN-Configurations-Included-Indicator", 1428, _G3, _ENUM, _M, "TS 29.272 §7.3.33",
       {0: "All_APN_CONFIGURATIONS_INCLUDED", 1: "MODIFIED_ADDED_APN_CONFIGURATIONS_INCLUDED"}),
    _a("APN-Configuration-Profile", 1429, _G3, _GRP, _M, "TS 29.272 §7.3.34"),
    _a("APN-Configuration", 1430, _G3, _GRP, _M, "TS 29.272 §7.3.35"),
    _a("EPS-Subscribed-QoS-Profile", 1431, _G3, _GRP, _M, "TS 29.272 §7.3.37"),
    _a("AMBR", 1435, _G3, _GRP, _M, "TS 29.272 §7.3.41"),
    _a("RAND", 1447, _G3, _OS, _M, "TS 29.272 §7.3.53"),
    _a("XRES", 1448, _G3, _OS, _M, "TS 29.272 §7.3.54"),
    _a("AUTN", 1449, _G3, _OS, _M, "TS 29.272 §7.3.55"),
    _a("KASME", 1450, _G3, _OS, _M, "TS 29.272 §7.3.56"),
    _a("PDN-Type", 1456, _G3, _ENUM, _M, "TS 29.272 §7.3.62",
       {0: "IPv4", 1: "IPv6", 2: "IPv4v6", 3: "IPv4_OR_IPv6"}),
    _a("UE-SRVCC-Capability", 1615, _G3, _ENUM, _M, "TS 29.272 §7.3.130",
       {0: "UE-SRVCC-NOT-SUPPORTED", 1: "UE-SRVCC-SUPPORTED"}),
    _a("Subscribed-Periodic-RAU-TAU-Timer", 1619, _G3, _U32, _M, "TS 29.272 §7.3.134"),
    _a("PUR-Flags", 1635, _G3, _U32, _M, "TS 29.272 §7.3.149"),
    _a("CLR-Flags", 1638, _G3, _U32, _M, "TS 29.272 §7.3.152"),
)

#: kmed's AVPs (docs/s6a.md): vendor 32473, V set, M clear; codes pinned (other modules use them).
_KME: tuple[AvpDef, ...] = (
    _a("KME-Check", 1, _K, _OS, _NO_M, "kmed: 16 octets, KDF(KME, FC_KME_CHECK, identity)"),
    _a("KME-Check-Identity", 2, _K, _OS, _NO_M, "kmed: EPS mobile identity value as sent by the UE"),
    _a("KME-Status", 3, _K, _ENUM, _NO_M, "kmed: result of the KME-Check comparison",
       {0: "MATCH", 1: "PROVISIONING_REQUIRED"}),
    _a("KME-Request", 4, _K, _U32, _NO_M, "kmed: 1 = provide a new KME", {1: "NEW_KME"}),
    _a("Encrypted-KME", 5, _K, _OS, _NO_M, "kmed: ECIES output (TS 33.501 C.3 layout)"),
    _a("KME-Scheme", 6, _K, _ENUM, _NO_M, "kmed: ECIES profile of Encrypted-KME",
       {1: "ECIES_PROFILE_A", 2: "ECIES_PROFILE_B"}),
    _a("KME", 7, _K, _OS, _NO_M, "kmed: 32 octets"),
    _a("KME-Binding", 8, _K, _ENUM, _NO_M, "kmed: inside E-UTRAN-Vector, which KME binds KASME",
       {0: "NOT_BOUND", 1: "BOUND_TO_CURRENT", 2: "BOUND_TO_NEW"}),
    _a("KME-Token", 9, _K, _OS, _NO_M, "kmed: HSS-keyed MAC token, in AIA, returned in ULR"),
)

AVPS: tuple[AvpDef, ...] = _BASE + _S6A + _KME

AVPS_BY_NAME: Mapping[str, AvpDef] = MappingProxyType({a.name: a for a in AVPS})
AVPS_BY_KEY: Mapping[int, AvpDef] = MappingProxyType({a.key: a for a in AVPS})
assert len(AVPS_BY_NAME) == len(AVPS) == len(AVPS_BY_KEY), "AVP names and (vendor, code) must be unique"


def avp(name: str) -> AvpDef:
    """The AVP named ``name``; ``KeyError`` naming it when it is not in the table."""
    found = AVPS_BY_NAME.get(name)
    if found is None:
        raise KeyError(f"unknown AVP name {name!r}")
    return found


def avp_by_code(code: int, vendor: int = 0) -> AvpDef | None:
    """The AVP with this code and vendor (0 = no V bit), or None."""
    return AVPS_BY_KEY.get(avp_key(code, vendor))


# --------------------------------------------------------------------------- flag bits

#: TS 29.272 §7.3.7 ULR-Flags bits (bit 0 = least significant).
ULR_SINGLE_REGISTRATION_INDICATION = 1 << 0
ULR_S6A_S6D_INDICATOR = 1 << 1
ULR_SKIP_SUBSCRIBER_DATA = 1 << 2
ULR_GPRS_SUBSCRIPTION_DATA_INDICATOR = 1 << 3
ULR_NODE_TYPE_INDICATOR = 1 << 4
ULR_INITIAL_ATTACH_INDICATOR = 1 << 5
ULR_PS_LCS_NOT_SUPPORTED_BY_UE = 1 << 6
#: TS 29.272 §7.3.8 ULA-Flags bits.
ULA_SEPARATION_INDICATION = 1 << 0
ULA_MME_REGISTERED_FOR_SMS = 1 << 1

RAT_TYPE_EUTRAN = 1004  # TS 29.212 §5.3.31
AUTH_SESSION_STATE_NO_STATE_MAINTAINED = 1  # RFC 6733 §8.11; S6a sessions are stateless (TS 29.272 §7.1.3)
KME_STATUS_MATCH = 0
KME_STATUS_PROVISIONING_REQUIRED = 1
KME_REQUEST_NEW = 1
KME_SCHEME_ECIES_PROFILE_A = 1
KME_SCHEME_ECIES_PROFILE_B = 2
KME_BINDING_NOT_BOUND = 0
KME_BINDING_BOUND_TO_CURRENT = 1
KME_BINDING_BOUND_TO_NEW = 2


# --------------------------------------------------------------------------- result codes


@dataclass(frozen=True, slots=True)
class ResultCodeDef:
    """A result code. ``vendor`` 0: a Result-Code value (RFC 6733 §7.1); otherwise an
    Experimental-Result-Code under that Vendor-Id (RFC 6733 §7.6)."""

    vendor: int
    code: int
    name: str
    ref: str


_RESULTS: dict[tuple[int, int], ResultCodeDef] = {}


def _rc(vendor: int, code: int, name: str, ref: str) -> int:
    key = (vendor, code)
    assert key not in _RESULTS, f"result code {key} defined twice"
    _RESULTS[key] = ResultCodeDef(vendor, code, name, ref)
    return code


# RFC 6733 §7.1.1-§7.1.5 (Result-Code AVP, no vendor).
DIAMETER_MULTI_ROUND_AUTH = _rc(0, 1001, "DIAMETER_MULTI_ROUND_AUTH", "RFC 6733 §7.1.1")
DIAMETER_SUCCESS = _rc(0, 2001, "DIAMETER_SUCCESS", "RFC 6733 §7.1.2")
DIAMETER_LIMITED_SUCCESS = _rc(0, 2002, "DIAMETER_LIMITED_SUCCESS", "RFC 6733 §7.1.2")
DIAMETER_COMMAND_UNSUPPORTED = _rc(0, 3001, "DIAMETER_COMMAND_UNSUPPORTED", "RFC 6733 §7.1.3")
DIAMETER_UNABLE_TO_DELIVER = _rc(0, 3002, "DIAMETER_UNABLE_TO_DELIVER", "RFC 6733 §7.1.3")
DIAMETER_REALM_NOT_SERVED = _rc(0, 3003, "DIAMETER_REALM_NOT_SERVED", "RFC 6733 §7.1.3")
DIAMETER_TOO_BUSY = _rc(0, 3004, "DIAMETER_TOO_BUSY", "RFC 6733 §7.1.3")
DIAMETER_LOOP_DETECTED = _rc(0, 3005, "DIAMETER_LOOP_DETECTED", "RFC 6733 §7.1.3")
DIAMETER_REDIRECT_INDICATION = _rc(0, 3006, "DIAMETER_REDIRECT_INDICATION", "RFC 6733 §7.1.3")
DIAMETER_APPLICATION_UNSUPPORTED = _rc(0, 3007, "DIAMETER_APPLICATION_UNSUPPORTED", "RFC 6733 §7.1.3")
DIAMETER_INVALID_HDR_BITS = _rc(0, 3008, "DIAMETER_INVALID_HDR_BITS", "RFC 6733 §7.1.3")
DIAMETER_INVALID_AVP_BITS = _rc(0, 3009, "DIAMETER_INVALID_AVP_BITS", "RFC 6733 §7.1.3")
DIAMETER_UNKNOWN_PEER = _rc(0, 3010, "DIAMETER_UNKNOWN_PEER", "RFC 6733 §7.1.3")
DIAMETER_AUTHENTICATION_REJECTED = _rc(0, 4001, "DIAMETER_AUTHENTICATION_REJECTED", "RFC 6733 §7.1.4")
DIAMETER_OUT_OF_SPACE = _rc(0, 4002, "DIAMETER_OUT_OF_SPACE", "RFC 6733 §7.1.4")
ELECTION_LOST = _rc(0, 4003, "ELECTION_LOST", "RFC 6733 §7.1.4")
DIAMETER_AVP_UNSUPPORTED = _rc(0, 5001, "DIAMETER_AVP_UNSUPPORTED", "RFC 6733 §7.1.5")
DIAMETER_UNKNOWN_SESSION_ID = _rc(0, 5002, "DIAMETER_UNKNOWN_SESSION_ID", "RFC 6733 §7.1.5")
DIAMETER_AUTHORIZATION_REJECTED = _rc(0, 5003, "DIAMETER_AUTHORIZATION_REJECTED", "RFC 6733 §7.1.5")
DIAMETER_INVALID_AVP_VALUE = _rc(0, 5004, "DIAMETER_INVALID_AVP_VALUE", "RFC 6733 §7.1.5")
DIAMETER_MISSING_AVP = _rc(0, 5005, "DIAMETER_MISSING_AVP", "RFC 6733 §7.1.5")
DIAMETER_RESOURCES_EXCEEDED = _rc(0, 5006, "DIAMETER_RESOURCES_EXCEEDED", "RFC 6733 §7.1.5")
DIAMETER_CONTRADICTING_AVPS = _rc(0, 5007, "DIAMETER_CONTRADICTING_AVPS", "RFC 6733 §7.1.5")
DIAMETER_AVP_NOT_ALLOWED = _rc(0, 5008, "DIAMETER_AVP_NOT_ALLOWED", "RFC 6733 §7.1.5")
DIAMETER_AVP_OCCURS_TOO_MANY_TIMES = _rc(0, 5009, "DIAMETER_AVP_OCCURS_TOO_MANY_TIMES", "RFC 6733 §7.1.5")
DIAMETER_NO_COMMON_APPLICATION = _rc(0, 5010, "DIAMETER_NO_COMMON_APPLICATION", "RFC 6733 §7.1.5")
DIAMETER_UNSUPPORTED_VERSION = _rc(0, 5011, "DIAMETER_UNSUPPORTED_VERSION", "RFC 6733 §7.1.5")
DIAMETER_UNABLE_TO_COMPLY = _rc(0, 5012, "DIAMETER_UNABLE_TO_COMPLY", "RFC 6733 §7.1.5")
DIAMETER_INVALID_BIT_IN_HEADER = _rc(0, 5013, "DIAMETER_INVALID_BIT_IN_HEADER", "RFC 6733 §7.1.5")
DIAMETER_INVALID_AVP_LENGTH = _rc(0, 5014, "DIAMETER_INVALID_AVP_LENGTH", "RFC 6733 §7.1.5")
DIAMETER_INVALID_MESSAGE_LENGTH = _rc(0, 5015, "DIAMETER_INVALID_MESSAGE_LENGTH", "RFC 6733 §7.1.5")
DIAMETER_INVALID_AVP_BIT_COMBO = _rc(0, 5016, "DIAMETER_INVALID_AVP_BIT_COMBO", "RFC 6733 §7.1.5")
DIAMETER_NO_COMMON_SECURITY = _rc(0, 5017, "DIAMETER_NO_COMMON_SECURITY", "RFC 6733 §7.1.5")

# TS 29.272 §7.4 (Experimental-Result-Code, Vendor-Id 10415). Note 5001 and 5004 collide with
# base Result-Code values: always look a code up with the vendor of the AVP that carried it.
DIAMETER_ERROR_USER_UNKNOWN = _rc(_G3, 5001, "DIAMETER_ERROR_USER_UNKNOWN", "TS 29.272 §7.4.3.1")
DIAMETER_ERROR_ROAMING_NOT_ALLOWED = _rc(_G3, 5004, "DIAMETER_ERROR_ROAMING_NOT_ALLOWED", "TS 29.272 §7.4.3.4")
DIAMETER_ERROR_UNKNOWN_EPS_SUBSCRIPTION = _rc(
    _G3, 5420, "DIAMETER_ERROR_UNKNOWN_EPS_SUBSCRIPTION", "TS 29.272 §7.4.3.2")
DIAMETER_ERROR_RAT_NOT_ALLOWED = _rc(_G3, 5421, "DIAMETER_ERROR_RAT_NOT_ALLOWED", "TS 29.272 §7.4.3.3")
DIAMETER_ERROR_EQUIPMENT_UNKNOWN = _rc(_G3, 5422, "DIAMETER_ERROR_EQUIPMENT_UNKNOWN", "TS 29.272 §7.4.3.5")
DIAMETER_ERROR_UNKNOWN_SERVING_NODE = _rc(
    _G3, 5423, "DIAMETER_ERROR_UNKNOWN_SERVING_NODE", "TS 29.272 §7.4.3.6")
DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE = _rc(
    _G3, 4181, "DIAMETER_AUTHENTICATION_DATA_UNAVAILABLE", "TS 29.272 §7.4.4.1")
DIAMETER_ERROR_CAMEL_SUBSCRIPTION_PRESENT = _rc(
    _G3, 4182, "DIAMETER_ERROR_CAMEL_SUBSCRIPTION_PRESENT", "TS 29.272 §7.4.4.2")

# kmed (Experimental-Result-Code, Vendor-Id 32473); docs/s6a.md says when each is sent.
DIAMETER_ERROR_KME_DEVICE_UNKNOWN = _rc(_K, 5901, "DIAMETER_ERROR_KME_DEVICE_UNKNOWN", "kmed: no key for the IMEI")
DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED = _rc(
    _K, 5902, "DIAMETER_ERROR_KME_PAIR_NOT_ALLOWED", "kmed: IMSI/IMEI pair not allowed")
DIAMETER_ERROR_KME_TOKEN_INVALID = _rc(
    _K, 5903, "DIAMETER_ERROR_KME_TOKEN_INVALID", "kmed: KME-Token missing, forged or not for this KME/pair")
DIAMETER_ERROR_KME_CHECK_MISSING = _rc(
    _K, 5904, "DIAMETER_ERROR_KME_CHECK_MISSING", "kmed: KME-Check without KME-Check-Identity or vice versa")

RESULT_CODES: Mapping[tuple[int, int], ResultCodeDef] = MappingProxyType(_RESULTS)


def result_name(code: int, vendor: int = 0) -> str:
    """Name of a result code: ``vendor`` is 0 for Result-Code, the Experimental-Result's
    Vendor-Id otherwise (5001 is DIAMETER_AVP_UNSUPPORTED with vendor 0 but
    DIAMETER_ERROR_USER_UNKNOWN with vendor 10415). Unknown codes give ``"<vendor>:<code>"``."""
    found = RESULT_CODES.get((vendor, code))
    return found.name if found is not None else f"{vendor}:{code}"


def is_success(code: int) -> bool:
    """RFC 6733 §7.1: 2xxx is success (for Result-Code and Experimental-Result-Code alike)."""
    return 2000 <= code < 3000


def is_protocol_error(code: int) -> bool:
    """RFC 6733 §7.1.3: 3xxx protocol errors travel in answers with the E bit."""
    return 3000 <= code < 4000
