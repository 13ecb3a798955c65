"""boxoffice: event-driven ticket booking over Kafka with PostgreSQL as the source of truth."""

__version__ = "0.1.0"
