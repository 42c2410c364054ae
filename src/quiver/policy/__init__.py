"""Policy: what may be seen and called, by whom, and what happens to what comes back."""
