"""Security properties against real daemons (docs/security.md lists where each is tested)."""
