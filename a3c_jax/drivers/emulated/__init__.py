"""The emulated backend: W asynchronous workers replayed in one jitted program."""
