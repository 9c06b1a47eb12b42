"""Asynchronous actor-learners: the shared store, the one worker loop, the supervisor."""
