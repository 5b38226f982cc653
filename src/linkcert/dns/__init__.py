"""DNS readiness of a link tracking domain: a CNAME to the platform, CAA allowing the CA."""

from linkcert.dns.check import CheckConfig, CheckResult, State, check_domain
from linkcert.dns.problems import Problem
from linkcert.dns.resolver import Resolver

__all__ = ["CheckConfig", "CheckResult", "Problem", "Resolver", "State", "check_domain"]
