"""Log lines carry the context (request id, namespace, session, job id) that follows a job."""

from __future__ import annotations

import json
import logging

from shared.logs import ContextFilter, JsonFormatter, bind, clear


def test_json_log_lines_carry_the_bound_context() -> None:
    record = logging.LogRecord("engram.test", logging.INFO, __file__, 1, "job %s done", ("j1",), None)
    clear()
    bind(request_id="r1", namespace="ns", session="s1", job_id="j1")
    ContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job j1 done"
    assert (line["request_id"], line["namespace"], line["session"], line["job_id"]) == ("r1", "ns", "s1", "j1")
    clear()


def test_clear_forgets_the_context() -> None:
    bind(job_id="j2")
    clear()
    record = logging.LogRecord("engram.test", logging.INFO, __file__, 1, "x", (), None)
    ContextFilter().filter(record)
    assert "job_id" not in json.loads(JsonFormatter().format(record))
