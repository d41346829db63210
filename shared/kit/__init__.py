"""Plumbing that every domain of ``shared`` may use and that uses none of them: the connection
layer to PostgreSQL (``pg`` connection parameters, ``db`` SQLAlchemy units of work, ``pipeline``
and ``adb`` psycopg pipelines, synchronous and asynchronous) and the workers' metrics registry."""
