"""Task names that the api (sender, by name) and the worker (registrant) agree on."""

QUEUE = "engram"
INTEGRATE = "jobs.integrate"
TRUNCATE = "jobs.truncate"

BY_KIND = {"integrate": INTEGRATE, "truncate": TRUNCATE}

DELIVER = "webhooks.deliver"  # one try at sending a webhook delivery
