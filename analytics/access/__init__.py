"""Who may call the API, which projects they may read, and what is recorded about it, one
concern per module:

* ``models``: ``ApiClient`` (service keys: only a prefix and a SHA-256 are stored),
  ``ProjectAccess`` (principal → project), ``QueryAudit`` (one row per data query) and
  the cache of key lookups that saving or deleting a client forgets.
* ``principals``: ``ApiClientPrincipal`` (``request.user`` of a key) and how a principal
  is named and which client it carries.
* ``authentication``: ``ApiKeyAuthentication`` (``Bearer``/``X-API-Key``) and its OpenAPI
  security scheme.
* ``scope``: ``scope_for`` / ``resolve_project_scope``, the ``ProjectScope`` every data
  query carries, and ``ProjectAccessDenied`` (403 naming foreign projects).
* ``audit``: ``record_query_as`` / ``record_query`` and the retention cleanup.
* ``throttling``: ``ClientRateThrottle`` (per principal, on the shared cache).
* ``privacy``: ``mask_ip`` / ``present_ip`` for every IP an endpoint returns.

Import from the module that holds a name; this package re-exports nothing, so each import
says which concern it depends on.
"""
