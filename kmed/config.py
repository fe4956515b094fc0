"""Configuration files (CONTRACT: Configuration): TOML, validated against declarative schemas.

Every key a daemon reads is listed in a schema table below, with its type, whether it is
required, and its default. Validation reports the file, the key, what was expected and what
was found; the command line turns :class:`ConfigError` into exit status 2.
Unknown keys are errors too: a misspelt key must not be silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """A configuration file is missing, unreadable or invalid."""

    def __init__(self, file: str | Path, key: str, expected: str, found: str) -> None:
        self.file = str(file)
        self.key = key
        self.expected = expected
        self.found = found
        super().__init__(f"{self.file}: key '{key}': expected {expected}, found {found}")


@dataclass(frozen=True)
class Endpoint:
    """A transport address such as ``tcp://127.0.0.1:3868`` or ``sctp://[::1]:3868``."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"


_ENDPOINT_RE = re.compile(r"^(?P<t>tcp|sctp|tls)://(?:\[(?P<h6>[^\]]+)\]|(?P<h>[^:/\[\]]+)):(?P<p>\d+)$")
_HOSTPORT_RE = re.compile(r"^(?:\[(?P<h6>[^\]]+)\]|(?P<h>[^:/\[\]]+)):(?P<p>\d+)$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
_FQDN_RE = re.compile(rf"^(?=.{{1,255}}$){_LABEL}(?:\.{_LABEL})*$")


def _is_hostname(text: str) -> bool:
    """A DNS host name; its last label is not all digits, so ``256.1.1.1`` is not one
    (RFC 1123 2.1, RFC 3696 2)."""
    return bool(_FQDN_RE.match(text)) and not text.rsplit(".", 1)[-1].isdigit()


def _check_host(host: str, bracketed: bool = False) -> str | None:
    """None when ``host`` is an IP address or a host name, else what is wrong.

    ``bracketed``: the text was inside ``[...]``, which only an IPv6 address may be.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if bracketed:
            return "not an IPv6 address"
        return None if _is_hostname(host) else "not an IP address or host name"
    if bracketed and address.version != 6:
        return "not an IPv6 address"
    return None


def _host_port(m: re.Match[str], shape: str) -> tuple[str, int]:
    """Check the host and port groups of a matched address; ValueError says which is wrong."""
    host = m.group("h6") or m.group("h")
    problem = _check_host(host, m.group("h6") is not None)
    if problem:
        raise ValueError(f"{shape} with a valid host ({host} is {problem})")
    port = int(m.group("p"))
    if not 0 < port < 65536:
        raise ValueError(f"{shape} with a port from 1 to 65535")
    return host, port


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``tcp://host:port`` (also ``sctp://``, ``tls://``; IPv6 in brackets)."""
    m = _ENDPOINT_RE.match(text)
    if not m:
        raise ValueError("an address like tcp://127.0.0.1:3868 (or sctp://, tls://)")
    host, port = _host_port(m, "an address like tcp://127.0.0.1:3868")
    return Endpoint(m.group("t"), host, port)


def parse_hostport(text: str) -> tuple[str, int]:
    """Parse ``host:port`` (IPv6 in brackets)."""
    m = _HOSTPORT_RE.match(text)
    if not m:
        raise ValueError("host:port such as 127.0.0.1:9101")
    return _host_port(m, "host:port such as 127.0.0.1:9101")


# --- value kinds -------------------------------------------------------------------------
# A kind is (description of what is expected, converter raising ValueError/TypeError).

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Kind:
    expected: str
    convert: Converter


def _str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise TypeError
    return v


def _int_range(lo: int, hi: int) -> Kind:
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise TypeError
        return v

    return Kind(f"an integer from {lo} to {hi}", conv)


def _float_range(lo: float, hi: float) -> Kind:
    def conv(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise TypeError
        return float(v)

    return Kind(f"a number from {lo} to {hi}", conv)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


_HEX_RE = re.compile(r"^[0-9A-Fa-f]*$")


def _hex(n: int) -> Kind:
    def conv(v: Any) -> bytes:
        if not isinstance(v, str) or len(v) != 2 * n or not _HEX_RE.match(v):
            raise TypeError
        return bytes.fromhex(v)

    return Kind(f"{2 * n} hexadecimal digits ({n} octets)", conv)


def _digits(lo: int, hi: int) -> Kind:
    def conv(v: Any) -> str:
        if not isinstance(v, str) or not v.isdigit() or not lo <= len(v) <= hi:
            raise TypeError
        return v

    span = f"{lo}" if lo == hi else f"{lo} to {hi}"
    return Kind(f"a string of {span} decimal digits", conv)


def _enum(*choices: str) -> Kind:
    def conv(v: Any) -> str:
        if v not in choices:
            raise TypeError
        return str(v)

    return Kind("one of " + ", ".join(repr(c) for c in choices), conv)


def _endpoint(v: Any) -> Endpoint:
    if not isinstance(v, str):
        raise TypeError
    return parse_endpoint(v)


class _BadItem(ValueError):
    """One item of a list is wrong: report that item, not the whole list."""

    def __init__(self, expected: str, index: int, item: Any) -> None:
        super().__init__(expected)
        self.index = index
        self.item = item


def _endpoints(v: Any) -> list[Endpoint]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        raise TypeError
    out = []
    for i, x in enumerate(v):
        try:
            out.append(_endpoint(x))
        except TypeError:
            raise _BadItem("an address like tcp://127.0.0.1:3868 (or sctp://, tls://)", i, x) from None
        except ValueError as exc:
            raise _BadItem(str(exc), i, x) from None
    return out


def _str_list(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise TypeError
    return list(v)


def _int_list(v: Any) -> list[int]:
    if not isinstance(v, list) or not v or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise TypeError
    return list(v)


def _hostport(v: Any) -> tuple[str, int]:
    if not isinstance(v, str):
        raise TypeError
    return parse_hostport(v)


def _fqdn(v: Any) -> str:
    if not isinstance(v, str) or not _is_hostname(v):
        raise TypeError
    return v


def _store_url(v: Any) -> str:
    if not isinstance(v, str) or not (
        v.startswith("sqlite://") or v.startswith("postgresql://") or v.startswith("postgres://")
    ):
        raise TypeError
    return v


STR = Kind("a non-empty string", _str)
BOOL = Kind("true or false", _bool)
PATH = Kind("a file or directory path", _str)
FQDN = Kind("a DiameterIdentity (host name such as hss.localdomain)", _fqdn)
ENDPOINT = Kind("an address like tcp://127.0.0.1:36412", _endpoint)
ENDPOINTS = Kind("a list of addresses like [\"tcp://127.0.0.1:3868\"]", _endpoints)
STR_LIST = Kind("a list of non-empty strings", _str_list)
INT_LIST = Kind("a non-empty list of integers", _int_list)
HOSTPORT = Kind("host:port such as 127.0.0.1:9101", _hostport)
STORE_URL = Kind("sqlite:///PATH or postgresql://...", _store_url)
LOG_LEVEL = _enum("debug", "info", "warning", "error")
LOG_FORMAT = _enum("json", "console")
PROFILE = _enum("A", "B")
MCC = _digits(3, 3)
MNC = _digits(2, 3)
IMSI = _digits(6, 15)
IMEI = _digits(15, 15)
IMEI14 = _digits(14, 14)
KEY128 = _hex(16)


@dataclass(frozen=True)
class Key:
    """One configuration key: its kind, and a default (``REQUIRED`` when it has none)."""

    kind: Kind
    default: Any = None
    required: bool = False
    doc: str = ""
    secret: bool = False  # never echo the value (K, OPc, seeds) in an error


def req(kind: Kind, doc: str = "", secret: bool = False) -> Key:
    return Key(kind, required=True, doc=doc, secret=secret)


def opt(kind: Kind, default: Any = None, doc: str = "", secret: bool = False) -> Key:
    return Key(kind, default=default, doc=doc, secret=secret)


#: Schema: section name ("" for top-level keys) -> key name -> Key.
Schema = Mapping[str, Mapping[str, Key]]

LOG_SECTION: Mapping[str, Key] = {
    "level": opt(LOG_LEVEL, "info", "debug, info, warning or error"),
    "format": opt(LOG_FORMAT, "json", "json (journald) or console (a person)"),
    "file": opt(PATH, None, "log to this file instead of stderr; reopened on SIGHUP"),
}
METRICS_SECTION: Mapping[str, Key] = {
    "listen": opt(HOSTPORT, None, "Prometheus endpoint host:port; none when absent"),
}
DIAMETER_COMMON: Mapping[str, Key] = {
    "origin_host": req(FQDN, "this node's DiameterIdentity"),
    "origin_realm": req(FQDN, "this node's realm"),
    "watchdog_s": opt(_float_range(1.0, 300.0), 30.0, "Tw, the DWR interval (RFC 3539)"),
    "request_timeout_s": opt(_float_range(0.1, 60.0), 3.0, "how long an answer is awaited"),
    "max_message_size": opt(_int_range(1024, 16 * 1024 * 1024), 65536, "largest message accepted"),
    "tls_cert": opt(PATH, None, "PEM certificate for tls:// endpoints"),
    "tls_key": opt(PATH, None, "PEM private key for tls:// endpoints"),
    "tls_ca": opt(PATH, None, "PEM CA bundle that peers' certificates must chain to"),
}

HSS_SCHEMA: Schema = {
    "diameter": {
        **DIAMETER_COMMON,
        "listen": req(ENDPOINTS, "where the HSS accepts S6a peers"),
        "allowed_peers": req(STR_LIST, "Origin-Hosts accepted at CER; others get 3010"),
    },
    "store": {
        "url": req(STORE_URL, "the subscriber store"),
        "synchronous": opt(_enum("full", "normal"), "full", "SQLite fsync policy (docs/hss.md: full = durable)"),
        "busy_timeout_s": opt(_float_range(0.1, 600.0), 10.0, "wait this long for a lock held by admin"),
        "writer": opt(_enum("process", "thread"), "process",
                      "the HSS's group commit in a child process or a thread (docs/hss.md, Durability)"),
    },
    "hss": {
        "max_vectors": opt(_int_range(1, 32), 5, "cap on Number-Of-Requested-Vectors"),
        "ind_bits": opt(_int_range(0, 10), 5, "IND length in SQN = SEQ||IND (TS 33.102 C.3.2)"),
        "bind_current_kme": opt(BOOL, True, "bind vectors to the KME held (see docs/protocol.md)"),
        "token_key_file": opt(PATH, None, "HSS key for the ULR KME token; next to the store when absent"),
        "kme_token_lifetime_s": opt(_float_range(1.0, 86400.0), 300.0, "a KME-Token older than this is refused"),
        "allowed_rat_types": opt(INT_LIST, [1004], "RAT-Type values accepted in ULR (1004 = EUTRAN)"),
        "enforce_pair_on_ulr": opt(BOOL, True, "ULR with an IMEI of a pair not allowed gets 5902"),
        "max_pending": opt(_int_range(1, 1_000_000), 1024, "requests awaiting commit before 3004 TOO_BUSY"),
        "commit_batch": opt(_int_range(1, 100_000), 1024, "most requests per group commit"),
        "cache_subscribers": opt(_int_range(0, 100_000_000), 2_000_000,
                                 "subscribers (and devices) kept in memory; 0 = none (docs/hss.md)"),
        "cache_warm": opt(BOOL, True, "load the subscribers into the read cache at start and on SIGHUP"),
    },
    "log": LOG_SECTION,
    "metrics": METRICS_SECTION,
}

CNN_SCHEMA: Schema = {
    "diameter": {
        **DIAMETER_COMMON,
        "connect": req(ENDPOINTS, "HSS or relay peers, in failover order"),
        "destination_realm": req(FQDN, "Destination-Realm of S6a requests"),
        "destination_host": opt(FQDN, None, "Destination-Host of S6a requests"),
    },
    "nas": {
        "listen": req(ENDPOINTS, "where the CNN accepts UE links"),
        "t3460_s": opt(_float_range(0.05, 60.0), 6.0, "retransmission timer for NAS requests"),
        "t3450_s": opt(_float_range(0.05, 60.0), 6.0, "retransmission timer for Attach/TAU Accept (TS 24.301 10.2)"),
        "t3470_s": opt(_float_range(0.05, 60.0), 6.0, "retransmission timer for Identity Request (TS 24.301 10.2)"),
        "kme_timer_s": opt(_float_range(0.05, 60.0), 6.0, "retransmission timer for KME Provisioning Command"),
        "t3412_s": opt(_float_range(0.0, 11160.0), 3240.0, "periodic TAU timer sent in Attach/TAU Accept; 0 = off"),
        "max_retransmissions": opt(_int_range(0, 10), 4, "retries before a procedure fails"),
        "max_frame_size": opt(_int_range(64, 1 << 20), 65536, "largest UE link frame accepted"),
        "ciphering": opt(_enum("EEA2", "EEA0"), "EEA2", "NAS ciphering; EEA0 keeps NAS readable in captures"),
        "t3346_s": opt(_float_range(2.0, 11160.0), 60.0, "back-off timer T3346 sent with EMM #22 (congestion)"),
    },
    "plmn": {"mcc": req(MCC), "mnc": req(MNC)},
    "cnn": {
        "mme_group_id": opt(_int_range(0, 65535), 1),
        "mme_code": opt(_int_range(0, 255), 1),
        "max_ue_contexts": opt(_int_range(1, 10_000_000), 1_000_000),
        "max_procedures": opt(_int_range(1, 10_000_000), 10_000, "procedures running before EMM #22 (overload)"),
        "max_s6a_pending": opt(_int_range(1, 1_000_000), 2_000, "S6a requests unanswered before EMM #22 (overload)"),
        "tac": opt(_int_range(0, 65535), 1, "tracking area code of the TAI list in Attach/TAU Accept"),
        "drain_timeout_s": opt(_float_range(0.0, 600.0), 10.0, "on SIGTERM, how long running procedures may finish"),
    },
    "log": LOG_SECTION,
    "metrics": METRICS_SECTION,
}

UE_SCHEMA: Schema = {
    "": {"state_dir": req(PATH, "USIM (usim/) and ME (me/) state persist here")},
    "cnn": {"connect": req(ENDPOINT, "the CNN's UE link")},
    "usim": {
        "imsi": req(IMSI),
        "k": req(KEY128, secret=True),
        "opc": req(KEY128, secret=True),
        "ind_bits": opt(_int_range(0, 10), 5, "IND length in SQN = SEQ||IND (TS 33.102 C.1.2), as the HSS's"),
    },
    "me": {
        "imei": req(IMEI),
        "private_key": req(PATH, "the device private key (PEM)"),
        "software_version": opt(_digits(2, 2), "01", "SVN: the IMEISV is the IMEI's 14 digits and this"),
    },
    "ue": {
        "timeout_s": opt(_float_range(0.1, 120.0), 10.0, "how long one attach may take"),
        "t3410_s": opt(_float_range(0.05, 60.0), 5.0, "T3410 (attach) / T3430 (TAU): a new attempt on expiry"),
        "max_attempts": opt(_int_range(1, 5), 5, "attach/TAU attempts (TS 24.301 5.5.1.2.6: 5)"),
    },
    "plmn": {
        "mcc": opt(MCC, None, "serving PLMN (SN id in KASME); default: the IMSI's first 3 digits"),
        "mnc": opt(MNC, None, "serving PLMN MNC; default: the IMSI's digits 4-5"),
    },
    "log": LOG_SECTION,
}

LOAD_SCHEMA: Schema = {
    "cnn": {"connect": req(ENDPOINTS, "CNN UE links; UEs are spread over them")},
    "subscribers": {
        "count": req(_int_range(1, 10_000_000)),
        "imsi_first": req(IMSI),
        "imei_first": req(IMEI14),
        "k": req(KEY128, secret=True),
        "opc": req(KEY128, secret=True),
        "device_key_seed": req(_hex(16), secret=True),
        "profile": opt(PROFILE, "A"),
        "ind_bits": opt(_int_range(0, 10), 5, "IND length in SQN = SEQ||IND, as the HSS's"),
    },
    "load": {
        "connections": opt(_int_range(1, 256), 4, "UE link connections (like eNodeBs)"),
        "workers": opt(_int_range(1, 64), 1, "generator processes"),
        "ramp_s": opt(_float_range(0.0, 3600.0), 1.0, "ramp-up of the arrival rate"),
        "timeout_s": opt(_float_range(0.1, 120.0), 10.0, "one procedure's deadline"),
        "rate_per_s": opt(_float_range(0.001, 1_000_000.0), 100.0, "open-loop arrival rate (--rate)"),
        "duration_s": opt(_float_range(0.1, 86400.0), 10.0, "measured window (--duration)"),
        "warmup": opt(BOOL, True, "attach first the UEs that must hold a KME/GUTI for the scenario"),
        "warmup_concurrency": opt(_int_range(1, 100_000), 200, "UEs attaching at once in warm-up and hold"),
        "warmup_timeout_s": opt(_float_range(1.0, 86400.0), 300.0, "bound on the warm-up"),
        "seed": opt(_int_range(0, 2**63 - 1), None, "random seed of arrivals and mix; random when absent"),
    },
    "plmn": {
        "mcc": opt(MCC, None, "serving PLMN (SN id in KASME); default: the IMSI's first 3 digits"),
        "mnc": opt(MNC, None, "serving PLMN MNC; default: the IMSI's digits 4-5"),
    },
    "mix": {
        "attach": opt(_float_range(0.0, 1000.0), 70.0),
        "provision": opt(_float_range(0.0, 1000.0), 10.0),
        "tau": opt(_float_range(0.0, 1000.0), 20.0),
    },
    "log": LOG_SECTION,
}


_FOUND_MAX = 80


def _type_name(v: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return names.get(type(v), type(v).__name__)


def describe(value: Any, secret: bool = False) -> str:
    """What was found, for an error message: the value (shortened), or only its shape if secret."""
    if secret:
        if isinstance(value, str):
            return f"a string of {len(value)} characters (value not shown: secret)"
        return _type_name(value) + " (value not shown: secret)"
    text = repr(value)
    if len(text) > _FOUND_MAX:
        text = text[: _FOUND_MAX - 3] + "..."
    return text


def validate(data: Mapping[str, Any], schema: Schema, file: str | Path) -> dict[str, dict[str, Any]]:
    """Check ``data`` (parsed TOML) against ``schema``; return section -> key -> value.

    Every schema key is present in the result (defaults filled in, ``None`` when absent and
    optional). Raises :class:`ConfigError` naming the first bad key.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in data:
        if name in schema and name != "":
            continue
        if "" in schema and name in schema[""]:
            continue
        known = sorted([s for s in schema if s] + list(schema.get("", {})))
        raise ConfigError(file, name, "one of " + ", ".join(known), "an unknown key")
    for section, keys in schema.items():
        raw = data if section == "" else data.get(section, {})
        if not isinstance(raw, dict):
            raise ConfigError(file, section, "a table [" + section + "]", describe(raw))
        if section:
            for name in raw:
                if name not in keys:
                    raise ConfigError(
                        file, f"{section}.{name}", "one of " + ", ".join(sorted(keys)), "an unknown key"
                    )
        values: dict[str, Any] = {}
        for name, key in keys.items():
            dotted = f"{section}.{name}" if section else name
            if name not in raw:
                if key.required:
                    raise ConfigError(file, dotted, key.kind.expected, "nothing (the key is missing)")
                values[name] = key.default
                continue
            try:
                values[name] = key.kind.convert(raw[name])
            except _BadItem as exc:
                found = f"{describe(exc.item, key.secret)} (item {exc.index + 1} of the list)"
                raise ConfigError(file, dotted, str(exc), found) from None
            except (TypeError, ValueError) as exc:
                expected = str(exc) if isinstance(exc, ValueError) and str(exc) else key.kind.expected
                raise ConfigError(file, dotted, expected, describe(raw[name], key.secret)) from None
        out[section] = values
    return out


def read(path: str | Path) -> dict[str, Any]:
    """Read and parse a TOML file (no schema check); errors as :class:`ConfigError`."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(p, "(file)", "a readable TOML file", "no such file") from None
    except OSError as exc:
        raise ConfigError(p, "(file)", "a readable TOML file", exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(p, "(file)", "UTF-8 text", f"a byte that is not UTF-8 at offset {exc.start}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages give the position and what it wanted, never the value.
        raise ConfigError(p, "(syntax)", "valid TOML", str(exc)) from None


def load(path: str | Path, schema: Schema) -> dict[str, dict[str, Any]]:
    """Read and validate a TOML file."""
    return validate(read(path), schema, Path(path))


SCHEMAS: dict[str, Schema] = {"hss": HSS_SCHEMA, "cnn": CNN_SCHEMA, "ue": UE_SCHEMA, "load": LOAD_SCHEMA}


def detect_kind(data: Mapping[str, Any]) -> str:
    """Guess which schema a parsed file follows (for ``kmed config check``)."""
    if "subscribers" in data or "load" in data or "mix" in data:
        return "load"
    if "usim" in data or "me" in data or "state_dir" in data or "ue" in data:
        return "ue"
    diameter = data.get("diameter")
    if "nas" in data or "plmn" in data or (isinstance(diameter, dict) and "connect" in diameter):
        return "cnn"
    return "hss"
