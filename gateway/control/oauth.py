"""OAuth2 bearer tokens for Sinch's project APIs (Voice API 2.0): the client credentials grant (RFC 6749 §4.4)
with the project's access key, from Sinch's token endpoint, cached until they are about to expire.

    POST https://auth.sinch.com/oauth2/token   Authorization: Basic base64(keyId:keySecret)
    grant_type=client_credentials           -> {"access_token": "...", "expires_in": 3600, "token_type": "bearer"}
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode

from gateway.control.sinch_http import CalloutError, post

# A token is renewed once this share of its lifetime has passed, so no request leaves with one about to expire.
RENEW_AT = 0.9


def basic(key_id: str, key_secret: str) -> str:
    """RFC 7617 Basic credentials: Sinch's token endpoint takes the access key so, and the Voice API too (for
    testing only, Sinch says)."""
    return "Basic " + base64.b64encode(f"{key_id}:{key_secret}".encode()).decode()


class OAuth2Token:
    def __init__(self, url: str, key_id: str, key_secret: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._credentials = basic(key_id, key_secret)
        self._clock = clock
        self._token = ""
        self._renew_at = 0.0
        self._lock = threading.Lock()  # one fetch at a time for the threads that share a client

    def bearer(self) -> str:
        """A valid access token: the cached one, or a new one once it is about to expire."""
        with self._lock:
            if not self._token or self._clock() >= self._renew_at:
                self._fetch()
            return self._token

    def renew(self, used: str) -> str:
        """A new token after Sinch refused `used` as expired (unless another thread renewed it meanwhile)."""
        with self._lock:
            if self._token == used:
                self._fetch()
            return self._token

    def _fetch(self) -> None:
        fetched_at = self._clock()
        answer = post(self.url, urlencode({"grant_type": "client_credentials"}).encode(), {
            "Authorization": self._credentials, "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json"})
        token, lifetime = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise CalloutError(f"{self.url} answered without an access_token and a positive expires_in")
        self._token = token
        self._renew_at = fetched_at + lifetime * RENEW_AT
