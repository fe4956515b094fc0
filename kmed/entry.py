"""The start of a daemon (``kmed hss``, ``kmed cnn``): the steps and exit statuses they share.

CONTRACT exit statuses: 2 for a bad configuration or an unusable ``[log] file`` (the message
names the file and the key), 1 when the daemon could not run (its ``<name>_failed`` event
says why), else what ``serve`` returns (0 after a clean stop).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from kmed import config as cfg
from kmed import log as klog


def run_daemon(
    name: str,
    config_path: str,
    schema: cfg.Schema,
    setup_logging: Callable[[dict[str, Any]], object],
    serve: Callable[[str, dict[str, Any]], Coroutine[Any, Any, int]],
    *,
    check: Callable[[str, dict[str, Any]], None] | None = None,
    umask: int | None = None,
    fatal: tuple[type[BaseException], ...] = (OSError,),
) -> int:
    """Load and check the configuration, set the umask, configure logging, install uvloop and
    run ``serve(config_path, conf)``; map failures to the exit statuses of the module doc."""
    try:
        conf = cfg.load(config_path, schema)
        if check is not None:
            check(config_path, conf)
    except cfg.ConfigError as exc:
        print(f"kmed: {exc}", file=sys.stderr)
        return 2
    if umask is not None:
        os.umask(umask)
    try:
        setup_logging(conf)
    except OSError as exc:
        print(f"kmed: {config_path}: key 'log.file': cannot open {conf['log']['file']}: {exc.strerror}",
              file=sys.stderr)
        return 2
    from kmed.diameter.transport import install_uvloop

    install_uvloop()
    try:
        return asyncio.run(serve(config_path, conf))
    except cfg.ConfigError as exc:  # found while starting (e.g. a key file named by the config)
        print(f"kmed: {exc}", file=sys.stderr)
        return 2
    except fatal as exc:
        klog.get(name).error(f"{name}_failed", error=f"{type(exc).__name__}: {exc}")
        return 1
