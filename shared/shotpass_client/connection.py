"""Where and how to reach a server: address, token and TLS files, from explicit values or the environment.

The CLI, the Nuke plugin and the Blender extension all build their `Client` through here, so a studio sets
SHOTPASS_SERVER, SHOTPASS_TOKEN, SHOTPASS_TLS_CA, SHOTPASS_TLS_CERT and SHOTPASS_TLS_KEY once (or fills the
host's own settings, which win) and every tool connects the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from .client import Client, tls_files

ENV = {
    "address": "SHOTPASS_SERVER",
    "token": "SHOTPASS_TOKEN",
    "tls_ca": "SHOTPASS_TLS_CA",
    "tls_cert": "SHOTPASS_TLS_CERT",
    "tls_key": "SHOTPASS_TLS_KEY",
}
FALLBACK_ADDRESS = "localhost:50051"


@dataclass(frozen=True)
class Connection:
    address: str = FALLBACK_ADDRESS
    token: Optional[str] = None
    tls_ca: Optional[str] = None  # CA (PEM) that signed the server's certificate: turns TLS on
    tls_cert: Optional[str] = None  # this client's certificate (PEM), for servers that demand mutual TLS
    tls_key: Optional[str] = None  # its private key (PEM)

    @classmethod
    def resolve(
        cls,
        address: Optional[str] = None,
        token: Optional[str] = None,
        tls_ca: Optional[str] = None,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> Connection:
        """Explicit values win; an empty or missing one falls back to its SHOTPASS_* environment variable."""
        environ = os.environ if env is None else env
        given = {"address": address, "token": token, "tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key}
        values = {k: (str(v).strip() if v else "") or environ.get(ENV[k], "").strip() or None for k, v in given.items()}
        values["address"] = values["address"] or FALLBACK_ADDRESS
        return cls(**values)  # type: ignore[arg-type]

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert)

    def client(self, connect_timeout: float = 5.0) -> Client:
        """A connected Client; a missing or unreadable TLS file is a ClientError naming it."""
        files = tls_files(self.tls_ca, self.tls_cert, self.tls_key)
        return Client(self.address, self.token, connect_timeout, tls=self.tls, **files)  # type: ignore[arg-type]

    def describe(self) -> str:
        """For status lines: the address and whether TLS is on (never the token)."""
        mode = "mutual TLS" if self.tls_cert else "TLS" if self.tls else "plaintext"
        return f"{self.address} ({mode})"
