"""The UE: a USIM (MILENAGE) and an ME holding a device key and its KME."""
