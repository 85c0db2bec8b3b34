"""Sinch connectStream to RTP stream gateway."""

import os

if os.environ.get("GATEWAY_NO_EXTENSIONS"):  # the Python data plane, as AIOHTTP_NO_EXTENSIONS does for aiohttp
    from gateway._source_only import prefer_source

    prefer_source(__name__)
