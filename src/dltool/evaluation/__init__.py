"""After training: load a run's model anywhere, score it (eval), label images (predict)."""
