"""The CDS Hooks 2.0 service (``ketacds serve``; install the ``server`` extra).

:mod:`ketacds.server.app` builds the FastAPI app; :mod:`~ketacds.server.routes` answers
the HTTP routes; :mod:`~ketacds.server.prefetch` gathers a hook call's FHIR resources
(:mod:`~ketacds.server.fhir_client` fetches what was not prefetched);
:mod:`~ketacds.server.evaluation` turns them into an assessment and cards;
:mod:`~ketacds.server.auth` checks JWT bearer tokens; :mod:`~ketacds.server.store` keeps
feedback, issued cards and seen token ids in SQLite; :mod:`~ketacds.server.middleware`
limits request sizes; :mod:`~ketacds.server.service` holds one worker's state.
"""
