"""Backends that launch W worker loops: threads, processes, Ray."""
