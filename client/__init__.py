"""The client: SDK and command line.

It depends on `ledger` only, so a verifier can install it without the server.
"""
