"""The user's database schema: the SQL of a release's migrations (``sql_source``) and its lint
(``squawk``). Adapters at the edge; the judgement is ``domain/migrations.py``."""
