"""``kmed bench crypto``: cost of the crypto operations the daemons perform per procedure.

Each figure is CPU microseconds per operation (``time.process_time`` over a loop of
``--iterations``; best of ``--repeat`` runs). They bound what one core can reach: e.g. an HSS
answering AIRs with one E-UTRAN vector cannot exceed 1e6 / (EPS vector µs) per second on one
core. Figures vary with the machine's load; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import functools
import secrets
import time
from collections.abc import Callable

from kmed.crypto import aka, ecies, kdf, kme, milenage, nas_security

_K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
_OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
_PLMN = kdf.plmn_id("001", "01")


def _cases() -> list[tuple[str, Callable[[], object]]]:
    rand, sqn, amf = secrets.token_bytes(16), bytes(6), b"\x80\x00"
    vector = aka.generate_eutran_vector(_K, _OPC, 1, amf, _PLMN)
    key_kme = kme.new_kme()
    identity = bytes.fromhex("0910100000000010")  # IMSI 001010000000001 as an EPS mobile identity value
    nonce = secrets.token_bytes(16)
    nas_key = secrets.token_bytes(16)
    msg64 = secrets.token_bytes(64)
    keys = {p: ecies.generate_keypair(p) for p in ecies.PROFILES}
    sealed = {p: ecies.encrypt(p, keys[p][1], key_kme) for p in ecies.PROFILES}
    ck_ik = vector.ck + vector.ik
    conc = vector.autn[:6]
    cases: list[tuple[str, Callable[[], object]]] = [
        ("EPS vector (RAND, MILENAGE, AUTN, KASME)", lambda: aka.generate_eutran_vector(_K, _OPC, 1, amf, _PLMN)),
        ("MILENAGE f1-f5* (cached key)", lambda: milenage.milenage(_K, _OPC, rand, sqn, amf)),
        ("AUTN check (USIM side)", lambda: aka.check_autn(_K, _OPC, vector.rand, vector.autn)),
        ("KDF (HMAC-SHA-256, 2 params)", lambda: kdf.kdf(ck_ik, kdf.FC_KASME, _PLMN, conc)),
        ("KASME", lambda: kdf.kasme(vector.ck, vector.ik, _PLMN, conc)),
        ("NAS keys (enc + int)", lambda: kdf.nas_keys(vector.kasme, 2, 2)),
        ("KME_Check", lambda: kme.kme_check(key_kme, identity)),
        ("ME_Rsp", lambda: kme.me_rsp(key_kme, nonce)),
        ("bound K'ASME", lambda: kme.bound_kasme(vector.kasme, key_kme)),
        ("EIA2, 64-octet message", lambda: nas_security.eia2(nas_key, 7, 0, 1, msg64)),
        ("EEA2, 64-octet message", lambda: nas_security.eea2(nas_key, 7, 0, 1, msg64)),
    ]
    for p in ecies.PROFILES:
        pub, priv = keys[p][1], keys[p][0]
        cases.append((f"ECIES profile {p} encrypt (32-octet KME)", functools.partial(ecies.encrypt, p, pub, key_kme)))
        cases.append((f"ECIES profile {p} decrypt", functools.partial(ecies.decrypt, p, priv, sealed[p])))
    return cases


def _measure(fn: Callable[[], object], iterations: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(iterations):
            fn()
        best = min(best, time.process_time() - t0)
    return best / iterations * 1e6


def main(argv: list[str] | None = None) -> int:
    """Print µs per operation for each crypto case."""
    ap = argparse.ArgumentParser(prog="kmed bench crypto", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--iterations", type=int, default=2000, help="operations per timed run (default 2000)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case; the best is printed (default 3)")
    args = ap.parse_args(argv)
    if args.iterations < 1 or args.repeat < 1:
        ap.error("--iterations and --repeat must be at least 1")
    print(f"kmed crypto benchmark: CPU µs per operation, best of {args.repeat} x {args.iterations}")
    for name, fn in _cases():
        fn()  # warm caches (AES key objects, P-256 key objects)
        us = _measure(fn, args.iterations, args.repeat)
        print(f"  {name:<42} {us:9.2f} µs   {1e6 / us:>10,.0f} /s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
