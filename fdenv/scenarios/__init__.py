"""Sources of user-channel scenarios: synthetic speech and the sentences it speaks."""
