"""The CNN (MME-like node): per-UE KME procedure state machine and daemon."""
