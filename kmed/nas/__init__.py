"""The NAS-like UE link: frames, NAS EPS messages (TS 24.301) and NAS security."""
