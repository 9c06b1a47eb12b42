"""The algorithm interface: the pure pieces of each of the paper's methods."""
