"""Pure pricing: money arithmetic, tariffs and rating. Imports nothing of ours and does no I/O."""
