"""A small OpenID Connect provider for tests, on the loopback interface only.

It speaks the authorization code flow with PKCE the way a hospital's provider would: discovery
document, an authorize endpoint (which "logs in" whoever the test names, with no form), a token
endpoint that checks the client secret, the code, the redirect URI and the PKCE verifier, and
a JWKS endpoint; ID tokens are RS256-signed with a fresh key. Nothing is reachable from
outside 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "radsal-test"
CLIENT_SECRET = "test-client-secret"


@dataclass
class Provider:
    url: str
    key: RSAKey
    # The claims the next /authorize call logs in with (set by the test).
    next_claims: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def login_as(self, **claims: Any) -> None:
        self.next_claims = claims


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            if parsed.path == "/.well-known/openid-configuration":
                self._json(200, {
                    "issuer": provider.url,
                    "authorization_endpoint": provider.url + "/authorize",
                    "token_endpoint": provider.url + "/token",
                    "jwks_uri": provider.url + "/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                })  # fmt: skip
            elif parsed.path == "/jwks":
                self._json(200, {"keys": [provider.key.as_dict(private=False)]})
            elif parsed.path == "/authorize":
                if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                provider.codes[code] = {
                    "claims": dict(provider.next_claims),
                    "nonce": query.get("nonce"),
                    "challenge": query.get("code_challenge"),
                    "redirect_uri": query["redirect_uri"],
                }
                back = (
                    query["redirect_uri"]
                    + "?"
                    + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
                )
                self.send_response(302)
                self.send_header("Location", back)
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if self.path != "/token":
                self._json(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            provider.token_requests.append(form)
            grant = provider.codes.pop(form.get("code", ""), None)
            if (
                form.get("client_id") != CLIENT_ID
                or form.get("client_secret") != CLIENT_SECRET
                or grant is None
                or form.get("redirect_uri") != grant["redirect_uri"]
                or _s256(form.get("code_verifier", "")) != grant["challenge"]
            ):
                self._json(400, {"error": "invalid_grant"})
                return
            now = int(time.time())
            claims = {
                "iss": provider.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                "nonce": grant["nonce"], **grant["claims"],
            }  # fmt: skip
            id_token = jwt.encode({"alg": "RS256", "kid": provider.key.kid}, claims, provider.key)
            self._json(200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "expires_in": 300, "id_token": id_token})  # fmt: skip

    return Handler


@contextmanager
def running_provider() -> Iterator[Provider]:
    """Start the provider on a free loopback port; stop it afterwards."""
    key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    provider = Provider(url=f"http://127.0.0.1:{server.server_address[1]}", key=key)
    server.RequestHandlerClass = _handler(provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
