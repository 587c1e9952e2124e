"""Local IVR that hands a caller to a remote center only when needed (SPEC R1-R9).

- :mod:`.menu`: menus as data and a pure interpreter (events in, actions out).
- :mod:`.remote_client`: HTTP client of a remote center (menus with ETag,
  proxies, progress by server-sent events with polling fallback, look-ups).
- :mod:`.app`: one call on an outbound-socket session (answer, menu, wait, bridge).
- :mod:`.server`: the outbound-socket server (one greenlet per call).
"""
