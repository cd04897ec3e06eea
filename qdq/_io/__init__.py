"""File formats qdq reads and writes (internal)."""
