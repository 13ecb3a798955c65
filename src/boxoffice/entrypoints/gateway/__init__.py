"""The HTTP API gateway: validates, turns commands into Kafka messages, answers from replies and read models."""
