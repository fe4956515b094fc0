"""The HSS: subscriber store, S6a handlers with KME provisioning, daemon and admin CLI."""
