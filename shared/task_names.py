"""Task names that the api (sender, by name) and the worker (registrant) agree on."""

from shared.models.states import JobKind

QUEUE = "engram"
INTEGRATE = "jobs.integrate"
TRUNCATE = "jobs.truncate"

BY_KIND: dict[str, str] = {JobKind.INTEGRATE: INTEGRATE, JobKind.TRUNCATE: TRUNCATE}

DELIVER = "webhooks.deliver"  # one try at sending a webhook delivery
