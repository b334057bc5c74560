"""opcard: OpenPGP smartcards as PKCS#11-like tokens, from Python and the command line."""
