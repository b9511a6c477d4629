"""Domain logic (pure, no Kafka or Faust import) and the Faust agents that bind it."""
