"""Model quality in the loop: the prediction store, delayed labels, realized and estimated performance."""
