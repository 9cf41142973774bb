"""Background jobs shared by several gateways: leases in the database (``leases``) decide who runs what."""
