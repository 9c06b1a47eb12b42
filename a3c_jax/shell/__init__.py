"""The run shell: resolve once, train on a driver, keep the run directory current."""
