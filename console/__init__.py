"""The staff traffic console: charts of the endpoints' answers inside the Django admin."""
