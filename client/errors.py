"""The client's typed errors. Each carries a message fit for one line of output.

ClientError
  ConfigError        the client's own configuration is unusable
  NodeUnavailable    no configured node answered
  Refused            a node refused a request (code and reason from the node)
    NotAuthorized    ... because of who the sender is (not enrolled, wrong role)
  Rejected           the transaction was committed but its family refused it
  Timeout            no answer in time (the transaction may still commit)
  ProofInvalid       an answer's proof does not verify against the trust anchor
  VerificationFailed a file, receipt or certificate does not verify
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error the SDK raises on purpose."""


class ConfigError(ClientError):
    pass


class NodeUnavailable(ClientError):
    pass


class Refused(ClientError):
    def __init__(self, code: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.status = status


class NotAuthorized(Refused):
    pass


class Rejected(ClientError):
    def __init__(self, tx_id: str, code: str, reason: str, height: int) -> None:
        super().__init__(f"transaction {tx_id[:16]} rejected at height {height}: {code}: {reason}")
        self.tx_id = tx_id
        self.code = code
        self.reason = reason
        self.height = height


class Timeout(ClientError):
    pass


class ProofInvalid(ClientError):
    pass


class VerificationFailed(ClientError):
    pass
