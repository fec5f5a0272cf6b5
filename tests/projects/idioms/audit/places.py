"""Where ``django.db.connection`` points, as the migrations and receivers of this project
record it in ``audit.Footprint.place``: the tests read it back to see which database (and
schema) each piece of code really wrote to.
"""

from pathlib import Path


def current_place() -> str:
    """``<database>/<schema>`` on PostgreSQL, the SQLite file's name otherwise."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_schema()")
            database, schema = cursor.fetchone()
        return f"{database}/{schema}"
    return Path(connection.settings_dict["NAME"]).name
