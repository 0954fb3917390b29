"""Agents that play fdenv's environments: scripted baselines and, later, learned policies."""
