"""Diameter base protocol (RFC 6733) and the S6a application (TS 29.272) with the KME AVPs."""
