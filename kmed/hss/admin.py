"""``kmed admin`` (the HSS store, seed step 0) and ``kmed keys`` (device key pairs).

Exit status (CONTRACT): 0 done, 1 refused or failed (duplicate, unknown IMSI or IMEI, store
error), 2 usage or configuration error (the message names the file and the key). ``admin``
works while the HSS runs: both use the same SQLite file in WAL mode, and the HSS reads
subscribers, devices and pairs per request, so what admin commits is seen at once.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kmed import config as cfg
from kmed.crypto import devkeys, ecies
from kmed.hss.files import write_private
from kmed.hss.sqlite_store import SqliteStore, sqlite_path
from kmed.hss.sqn import SQN_MAX
from kmed.hss.store import StoreError

#: provision-range inserts and derives keys in chunks of this many devices.
CHUNK = 10_000


class UsageError(Exception):
    """A bad argument value (exit 2)."""


def _err(msg: str) -> None:
    print(f"kmed: {msg}", file=sys.stderr)


# --- argument values ----------------------------------------------------------------------


def _digits(name: str, value: str, lengths: tuple[int, ...]) -> str:
    if not (value.isascii() and value.isdigit() and len(value) in lengths):
        span = " or ".join(str(n) for n in lengths) if len(lengths) < 4 else f"{lengths[0]} to {lengths[-1]}"
        raise UsageError(f"--{name}: expected {span} decimal digits, got {value!r}")
    return value


def _imsi(value: str, name: str = "imsi") -> str:
    return _digits(name, value, tuple(range(6, 16)))


def _imei(value: str, name: str = "imei") -> str:
    _digits(name, value, (15,))
    if devkeys.luhn_digit(value[:14]) != value[14]:
        raise UsageError(f"--{name}: {value} has a wrong check digit (expected {devkeys.luhn_digit(value[:14])})")
    return value


def _hex(name: str, value: str, n: int) -> bytes:
    try:
        data = bytes.fromhex(value)
    except ValueError:
        data = b""
    if len(data) != n:
        # Never echo the value: it may be a key.
        raise UsageError(f"--{name}: expected {2 * n} hexadecimal digits ({n} octets)")
    return data


# --- store access -------------------------------------------------------------------------


def open_store(config_path: str) -> SqliteStore:
    """The store the HSS configuration names (ConfigError, StoreError propagate)."""
    conf = cfg.load(config_path, cfg.HSS_SCHEMA)
    store_conf = conf["store"]
    try:
        path = sqlite_path(store_conf["url"], Path(config_path).resolve().parent)
    except ValueError as exc:
        raise cfg.ConfigError(config_path, "store.url", str(exc), repr(store_conf["url"])) from None
    return SqliteStore(path, synchronous=store_conf["synchronous"], busy_timeout_s=store_conf["busy_timeout_s"])


def _run_admin(args: argparse.Namespace) -> int:
    try:
        action = args.admin_action
        store = open_store(args.config)
    except cfg.ConfigError as exc:
        _err(str(exc))
        return 2
    except StoreError as exc:
        _err(f"store: {exc}")
        return 1
    except OSError as exc:
        _err(f"store: {exc.strerror or exc}")
        return 1
    try:
        return int(action(store, args))
    except UsageError as exc:
        _err(str(exc))
        return 2
    except StoreError as exc:
        _err(str(exc))
        return 1
    finally:
        store.close()


def _subscriber_add(store: SqliteStore, args: argparse.Namespace) -> int:
    imsi = _imsi(args.imsi)
    k = _hex("k", args.k, 16)
    opc = _hex("opc", args.opc, 16)
    amf = _hex("amf", args.amf, 2)
    if not 0 <= args.sqn <= SQN_MAX:
        raise UsageError(f"--sqn: expected 0 to {SQN_MAX}")
    store.add_subscriber(imsi, k, opc, amf, args.sqn)
    print(f"subscriber {imsi} added")
    return 0


def _device_add(store: SqliteStore, args: argparse.Namespace) -> int:
    imei = _imei(args.imei)
    try:
        pem = Path(args.public_key).read_bytes()
    except OSError as exc:
        raise UsageError(f"--public-key {args.public_key}: {exc.strerror or exc}") from None
    try:
        profile, raw = ecies.load_public_key_pem(pem)
    except (ecies.EciesError, ValueError) as exc:
        raise UsageError(f"--public-key {args.public_key}: {exc}") from None
    store.add_device(imei, profile, raw)
    print(f"device {imei} added (profile {profile})")
    return 0


def _pair(store: SqliteStore, args: argparse.Namespace) -> int:
    imsi, imei = _imsi(args.imsi), _imei(args.imei)
    if args.pair_action == "allow":
        new = store.allow_pair(imsi, imei)
        print(f"pair {imsi}/{imei} {'allowed' if new else 'was already allowed'}")
    else:
        was = store.deny_pair(imsi, imei)
        print(f"pair {imsi}/{imei} {'denied' if was else 'was not allowed'}")
    return 0


def _show(store: SqliteStore, args: argparse.Namespace) -> int:
    imsi = _imsi(args.imsi)
    shown = store.show(imsi)
    if shown is None:
        _err(f"unknown IMSI {imsi}")
        return 1
    print(json.dumps(shown, sort_keys=True))
    return 0


# --- provision-range ----------------------------------------------------------------------


def _device_chunk(job: tuple[bytes, str, str, int, int]) -> list[tuple[str, str, bytes]]:
    """Worker: (IMEI, profile, public key) for devices start..start+n of the range."""
    seed, imei_first, profile, start, n = job
    out = []
    for i in range(start, start + n):
        imei = devkeys.imei_at(imei_first, i)
        out.append((imei, profile, devkeys.derive_device_key(seed, imei, profile)[1]))
    return out


def provision_range(
    store: SqliteStore,
    count: int,
    imsi_first: str,
    imei_first: str,
    k: bytes,
    opc: bytes,
    seed: bytes,
    profile: str,
    amf: bytes = b"\x80\x00",
    workers: int | None = None,
) -> float:
    """Provision ``count`` subscribers, devices (keys derived from ``seed``) and allowed pairs
    in one transaction; returns the seconds it took. Device keys are derived in ``workers``
    processes (default: one per CPU) for large counts; the inserts stream into SQLite."""
    # Both ends of the ranges are checked up front, so a bad range fails before any work.
    devkeys.imsi_at(imsi_first, count - 1)
    devkeys.imei_at(imei_first, count - 1)
    t0 = time.perf_counter()
    jobs = [(seed, imei_first, profile, s, min(CHUNK, count - s)) for s in range(0, count, CHUNK)]
    nproc = workers if workers is not None else (os.cpu_count() or 1)
    pool = None
    chunks: Iterator[list[tuple[str, str, bytes]]]
    if nproc > 1 and count > CHUNK:
        pool = multiprocessing.get_context("fork").Pool(nproc)
        chunks = pool.imap(_device_chunk, jobs)
    else:
        chunks = map(_device_chunk, jobs)
    store.begin_bulk()
    try:
        for (_, _, _, start, n), devices in zip(jobs, chunks, strict=True):
            subs = [(devkeys.imsi_at(imsi_first, i), k, opc, amf, 0) for i in range(start, start + n)]
            pairs = [(s[0], dv[0]) for s, dv in zip(subs, devices, strict=True)]
            store.bulk_chunk(subs, devices, pairs)
        store.end_bulk(commit=True)
    except BaseException:
        store.end_bulk(commit=False)
        raise
    finally:
        if pool is not None:
            pool.terminate()
    return time.perf_counter() - t0


def _provision_range(store: SqliteStore, args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UsageError("--count: expected a positive integer")
    imsi_first = _imsi(args.imsi_first, "imsi-first")
    imei_first = _digits("imei-first", args.imei_first, (14,))
    k, opc = _hex("k", args.k, 16), _hex("opc", args.opc, 16)
    amf = _hex("amf", args.amf, 2)
    try:
        seed = bytes.fromhex(args.device_key_seed)
    except ValueError:
        seed = b""
    if len(seed) < devkeys.MIN_SEED_LEN:
        raise UsageError(f"--device-key-seed: expected at least {2 * devkeys.MIN_SEED_LEN} hexadecimal digits")
    try:
        devkeys.imsi_at(imsi_first, args.count - 1)
        devkeys.imei_at(imei_first, args.count - 1)
    except ValueError as exc:
        raise UsageError(f"the range does not fit: {exc}") from None
    took = provision_range(store, args.count, imsi_first, imei_first, k, opc, seed, args.profile, amf, args.workers)
    print(f"provisioned {args.count} subscribers, devices and allowed pairs in {took:.1f} s")
    return 0


# --- kmed keys ----------------------------------------------------------------------------


def _keys_gen(args: argparse.Namespace) -> int:
    priv_path, pub_path = Path(args.private_key), Path(args.public_key)
    for p in (priv_path, pub_path):
        if p.exists() and not args.force:
            _err(f"{p} exists (use --force to replace it)")
            return 1
    private, public = ecies.generate_keypair(args.profile)
    try:
        write_private(priv_path, ecies.private_key_to_pem(args.profile, private))
        pub_path.write_bytes(ecies.public_key_to_pem(args.profile, public))
    except OSError as exc:
        _err(f"{exc.filename}: {exc.strerror or exc}")
        return 1
    print(f"profile {args.profile} key pair: private {priv_path} (mode 0600), public {pub_path}")
    return 0


# --- argument parsers ---------------------------------------------------------------------


def register_admin(sub: Any) -> None:
    """``kmed admin --config HSS_FILE ...`` (CONTRACT: Commands)."""
    p = sub.add_parser("admin", help="manage the HSS store: subscribers, devices, pairs (seed step 0)")
    p.add_argument("--config", required=True, metavar="HSS_FILE", help="the HSS configuration (names the store)")
    acts = p.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    s = acts.add_parser("subscriber", help="subscribers").add_subparsers(dest="sub_action", required=True)
    a = s.add_parser("add", help="add a subscriber")
    a.add_argument("--imsi", required=True)
    a.add_argument("--k", required=True, metavar="HEX", help="K, 32 hex digits")
    a.add_argument("--opc", required=True, metavar="HEX", help="OPc, 32 hex digits")
    a.add_argument("--amf", default="8000", metavar="HEX", help="AMF, 4 hex digits (default 8000)")
    a.add_argument("--sqn", type=int, default=0, metavar="N", help="highest SQN already used (default 0)")
    a.set_defaults(admin_action=_subscriber_add)

    dv = acts.add_parser("device", help="devices").add_subparsers(dest="dev_action", required=True)
    a = dv.add_parser("add", help="register a device public key (X25519 = profile A, P-256 = B)")
    a.add_argument("--imei", required=True, help="15 digits with the Luhn check digit")
    a.add_argument("--public-key", required=True, metavar="PEM_FILE")
    a.set_defaults(admin_action=_device_add)

    pr = acts.add_parser("pair", help="allowed IMSI/IMEI pairs")
    pr.add_argument("pair_action", choices=["allow", "deny"])
    pr.add_argument("--imsi", required=True)
    pr.add_argument("--imei", required=True)
    pr.set_defaults(admin_action=_pair)

    a = acts.add_parser("provision-range", help="bulk: N subscribers, devices (derived keys) and pairs")
    a.add_argument("--count", type=int, required=True, metavar="N")
    a.add_argument("--imsi-first", required=True, metavar="IMSI")
    a.add_argument("--imei-first", required=True, metavar="DIGITS14", help="first 14 IMEI digits")
    a.add_argument("--k", required=True, metavar="HEX")
    a.add_argument("--opc", required=True, metavar="HEX")
    a.add_argument("--amf", default="8000", metavar="HEX")
    a.add_argument("--device-key-seed", required=True, metavar="HEX")
    a.add_argument("--profile", choices=["A", "B"], default="A")
    a.add_argument("--workers", type=int, default=None, help="key derivation processes (default: CPUs)")
    a.set_defaults(admin_action=_provision_range)

    a = acts.add_parser("show", help="one subscriber as JSON (secrets as fingerprints only)")
    a.add_argument("--imsi", required=True)
    a.set_defaults(admin_action=_show)

    p.set_defaults(func=_run_admin)


def register_keys(sub: Any) -> None:
    """``kmed keys gen --profile A|B --private-key FILE --public-key FILE``."""
    p = sub.add_parser("keys", help="device key pairs")
    acts = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    g = acts.add_parser("gen", help="generate a device key pair in PEM")
    g.add_argument("--profile", choices=["A", "B"], required=True, help="A = X25519, B = P-256")
    g.add_argument("--private-key", required=True, metavar="FILE", help="written mode 0600")
    g.add_argument("--public-key", required=True, metavar="FILE")
    g.add_argument("--force", action="store_true", help="replace existing files")
    g.set_defaults(func=_keys_gen)
