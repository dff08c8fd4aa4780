"""What api/openapi.yaml says in words that JSON Schema cannot, so the fuzzer draws no case the
document itself rules out (loaded for the public API, and for the staff API's copy of its
submission, by api/schemathesis.toml)."""

import schemathesis


@schemathesis.hook
def filter_body(context, body):
    """A submission's `recipient` and its `agent`'s address are someone else's: not the
    requester's own `email` (compared as stored, case-insensitively). The handler refuses either
    with `invalid_field`, as documented."""
    submissions = ("POST /requests", "POST /staff/requests")
    if context.operation is None or context.operation.label not in submissions or not isinstance(body, dict):
        return True
    email, recipient = body.get("email"), body.get("recipient")
    if isinstance(email, str) and isinstance(recipient, str):
        if email.strip().lower() == recipient.strip().lower():
            return False
    # An agent's address is not the person's own either.
    agent = body.get("agent")
    if isinstance(email, str) and isinstance(agent, dict) and isinstance(agent.get("email"), str):
        return email.strip().lower() != agent["email"].strip().lower()
    return True
