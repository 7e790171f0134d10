"""The security suite: injection, scope escape, hostile input and the structural rules
that keep every ClickHouse read behind the printer's tenant guard (issue 10)."""
