"""Demo gateway traffic: the generator behind ``manage.py generate_traffic``.

Only demo data lives here; the top-routes and client-analytics API is elsewhere.
"""
