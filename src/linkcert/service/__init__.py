"""Assembly: how the store feeds the edge, and the processes that run it all."""
