"""The CDS Hooks 2.0 service (``ketacds serve``; install the ``server`` extra).

:mod:`ketacds.server.app` builds the FastAPI app; :mod:`~ketacds.server.auth` checks
JWT bearer tokens; :mod:`~ketacds.server.store` keeps feedback, issued cards and seen
token ids in SQLite; :mod:`~ketacds.server.fhir_client` fetches what was not prefetched.
"""
