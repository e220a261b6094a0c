"""Pure data and cryptography shared by the node, the consensus core and the client.

Nothing in this package performs I/O (`keyfile` excepted, the one module that
reads and writes key files so that node and client share that code); a test
parses every module's imports and fails if one appears.
"""

__version__ = "0.1.0"
