"""The edge: serves customers' tracking domains over HTTP and HTTPS.

edge = Edge(
    tracking_key=tracking_key_from_secret(settings.tracking_key),
    certificates=cache,           # CertificateCache, filled from the store
    challenge_lookup=book,        # ChallengeBook fed from the store (or async token -> str | None)
    click_sink=sink,              # batches of Click, sync or async
    settings=EdgeSettings(http="0.0.0.0:80", https="0.0.0.0:443"),
)
await edge.start()
...
await edge.aclose()
"""

from linkcert.edge.certs import (
    CertificateCache,
    CertificateNotLoaded,
    DomainContext,
    UnusableCertificate,
)
from linkcert.edge.challenges import ChallengeBook
from linkcert.edge.counters import EdgeCounters
from linkcert.edge.listen import ListenSpec
from linkcert.edge.pem import PemError
from linkcert.edge.proxy import ProxySettings
from linkcert.edge.routes import ChallengeLookup
from linkcert.edge.server import Edge, EdgeSettings

__all__ = [
    "CertificateCache",
    "CertificateNotLoaded",
    "ChallengeBook",
    "ChallengeLookup",
    "DomainContext",
    "Edge",
    "EdgeCounters",
    "EdgeSettings",
    "ListenSpec",
    "PemError",
    "ProxySettings",
    "UnusableCertificate",
]
