"""Pure domain model: versions, deployment states, releases. No I/O here."""
