"""The pure core: environments, networks, distributions, returns, losses, rollout, optimisers."""
