"""Pure cryptographic functions: MILENAGE, the 3GPP KDF, ECIES, NAS security, KME functions."""
