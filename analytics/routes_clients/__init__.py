"""``GET /gateway/top-routes`` and ``GET /gateway/client-analytics``: their query trees
(``queries``), input and output shapes (``serializers``), views and urls. Nothing outside
this package but the endpoint registry (``analytics.endpoints``) and the root urls uses it;
the window parameters other endpoints share live in ``analytics.window``."""
