"""Storage: SQLAlchemy tables, the database handle, and queries. SQLite by default, PostgreSQL too."""
