"""The drivers: the synchronous program, the asynchronous workers and store, the emulator."""
