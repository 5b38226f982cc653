"""Benchmarks: each runs linkcert side by side with the peer and reports ratios."""
