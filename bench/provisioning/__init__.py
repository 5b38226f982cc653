"""Parts of `bench/provision.py`: the loopback world, the two contenders, the client, figures."""
