"""Edges: Kafka, PostgreSQL, SMTP, the payment provider and the embedded servers."""
