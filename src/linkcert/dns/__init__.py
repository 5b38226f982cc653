"""DNS readiness of a link tracking domain: a CNAME to the platform, CAA allowing the CA."""
