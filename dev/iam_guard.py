"""IAM for the emulator: calls signed with an assumed role's credentials are authorised like AWS.

The developer key (`test`, what tests and provisioning sign with) and unsigned requests pass
untouched. A request signed with any other key must carry the credentials of a role session
moto's STS handed out; it is then mapped to every (action, resource) pair AWS would authorise
and each pair is evaluated against the role's policies (inline and attached managed, plus a
permissions boundary and the session policy when there are any): an explicit Deny wins, else an
Allow is needed. A refusal answers in the calling service's own error format, so the SDK sees
the AccessDenied error a deployed function would see, and is logged on one line to stderr.

moto's own enforcement (INITIAL_NO_AUTH_ACTION_COUNT) is not used: it authorises DynamoDB and
SES v2 against resource "*", turns any condition it cannot evaluate into a deny even in an Allow
statement, and its AssumeRole fails for roles trusting a service principal.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import sys
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any, Callable, Iterable

DEVELOPER_KEY = "test"
DEFAULT_ACCOUNT = "123456789012"
PARTITION = "aws"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
# A condition context: lower-cased key -> its values (absent keys are simply not there).
Context = dict[str, list[str]]


@dataclass(frozen=True)
class Signer:
    key: str
    region: str | None
    service: str | None


@dataclass
class Check:
    """One (action, resource) pair the request needs, with its request-specific condition keys."""

    action: str
    resource: str
    context: Context = field(default_factory=dict)


class Refusal(Exception):
    """The request is refused before policy evaluation (an action the guard does not grant)."""

    def __init__(self, check: Check, reason: str):
        super().__init__(reason)
        self.check = check
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Who signed the request


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/([^/]*)/([^/]*)/")
_SIGV2 = re.compile(r"^AWS ([^:\s]+):")


def signer_of(environ: Environ) -> Signer | None:
    """The access key (and scope) a request is signed with: header or presigned query."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if authorization:
        match = _CREDENTIAL.search(authorization)
        if match:
            return Signer(match.group(1), match.group(2) or None, match.group(3) or None)
        match = _SIGV2.match(authorization)
        if match:
            return Signer(match.group(1), None, None)
    query = environ.get("QUERY_STRING", "")
    if "X-Amz-Credential" in query or "AWSAccessKeyId" in query:
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        if "X-Amz-Credential" in params:
            parts = params["X-Amz-Credential"][0].split("/")
            if len(parts) >= 4:
                return Signer(parts[0], parts[2] or None, parts[3] or None)
            return Signer(parts[0], None, None)
        if "AWSAccessKeyId" in params:
            return Signer(params["AWSAccessKeyId"][0], None, None)
    return None


def session_token_of(environ: Environ) -> str | None:
    token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
    if token:
        return str(token)
    query = environ.get("QUERY_STRING", "")
    # SigV4 presigning spells it X-Amz-Security-Token, SigV2 x-amz-security-token.
    if "security-token" in query.lower():
        for name, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
            if name.lower() == "x-amz-security-token" and values:
                return values[0]
    return None


def find_session(access_key: str) -> Any | None:
    """moto's assumed-role session for this key, in whichever account it was made."""
    from moto.sts.models import sts_backends

    for account_id in list(sts_backends.keys()):
        for session in list(sts_backends[account_id][PARTITION].assumed_roles):
            if session.access_key_id == access_key:
                return session
    return None


# ---------------------------------------------------------------------------------------------
# The role's policies


@dataclass
class Policies:
    identity: list[dict[str, Any]]
    boundary: dict[str, Any] | None
    session: dict[str, Any] | None


def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    text = str(raw)
    if text.lstrip().startswith("%7B") or text.lstrip().startswith("%7b"):
        text = urllib.parse.unquote(text)
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else {}


def _default_version(policy: Any) -> dict[str, Any]:
    versions = list(policy.versions)
    chosen = next((v for v in versions if v.is_default), versions[0] if versions else None)
    return _document(chosen.document) if chosen is not None else {}


def policies_of(session: Any) -> Policies:
    from moto.iam.models import iam_backends

    iam = iam_backends[session.account_id][PARTITION]
    role = None
    for candidate in list(iam.roles.values()):
        if candidate.arn == session.role_arn:
            role = candidate
            break
    if role is None:
        name = session.role_arn.rsplit("/", 1)[-1]
        role = next((r for r in list(iam.roles.values()) if r.name == name), None)
    identity: list[dict[str, Any]] = []
    boundary = None
    if role is not None:
        identity += [_document(doc) for doc in list(role.policies.values())]
        identity += [_default_version(p) for p in list(role.managed_policies.values())]
        if role.permissions_boundary_arn:
            managed = iam.managed_policies.get(role.permissions_boundary_arn)
            # A boundary that names no known policy allows nothing, as in AWS.
            boundary = _default_version(managed) if managed is not None else {"Statement": []}
    session_policy = _document(session.policy) if session.policy else None
    return Policies(identity, boundary, session_policy)


# ---------------------------------------------------------------------------------------------
# Policy evaluation


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def glob_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def arn_match(pattern: str, arn: str) -> bool:
    """ArnLike: each of the six colon-separated parts matches on its own (wildcards stay inside)."""
    if pattern == "*":
        return True
    pattern_parts = pattern.split(":", 5)
    arn_parts = arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return glob_match(pattern, arn)
    return all(glob_match(p, a) for p, a in zip(pattern_parts, arn_parts))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _string_equals(policy: str, value: str) -> bool:
    return policy == value


def _string_equals_ignore_case(policy: str, value: str) -> bool:
    return policy.lower() == value.lower()


def _string_like(policy: str, value: str) -> bool:
    return glob_match(policy, value)


def _bool(policy: str, value: str) -> bool:
    return str(policy).lower() == str(value).lower()


# Operator -> (matches one policy value against one request value, negated).
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "stringequals": (_string_equals, False),
    "stringnotequals": (_string_equals, True),
    "stringequalsignorecase": (_string_equals_ignore_case, False),
    "stringnotequalsignorecase": (_string_equals_ignore_case, True),
    "stringlike": (_string_like, False),
    "stringnotlike": (_string_like, True),
    "arnequals": (arn_match, False),
    "arnlike": (arn_match, False),
    "arnnotequals": (arn_match, True),
    "arnnotlike": (arn_match, True),
    "bool": (_bool, False),
}


class UnsupportedCondition(Exception):
    pass


def condition_holds(operator: str, key: str, policy_values: list[Any], context: Context) -> bool:
    """One key of one condition operator, with AWS's rules for keys the request does not have."""
    name = operator.lower()
    qualifier = ""
    for prefix in ("foranyvalue:", "forallvalues:"):
        if name.startswith(prefix):
            qualifier, name = prefix, name[len(prefix) :]
    if_exists = name.endswith("ifexists")
    if if_exists:
        name = name[: -len("ifexists")]
    values = context.get(key.lower())
    expected = [str(v).lower() if isinstance(v, bool) else str(v) for v in policy_values]
    if name == "null":
        # {"key": "true"} holds when the key is absent.
        return any((values is None) == (v.lower() == "true") for v in expected)
    if name not in _OPERATORS:
        raise UnsupportedCondition(operator)
    matches, negated = _OPERATORS[name]

    def one(value: str) -> bool:
        hit = any(matches(p, value) for p in expected)
        return not hit if negated else hit

    if values is None or values == []:
        if qualifier == "forallvalues:":
            return True
        if qualifier == "foranyvalue:":
            return False
        return if_exists or negated
    if qualifier == "forallvalues:":
        return all(one(v) for v in values)
    if qualifier == "foranyvalue:":
        return any(one(v) for v in values)
    if negated:
        # A single-valued negated operator holds when no request value matches a policy value.
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def _conditions_hold(conditions: dict[str, Any], context: Context) -> bool:
    for operator, keys in conditions.items():
        for key, policy_values in (keys or {}).items():
            if not condition_holds(operator, key, _as_list(policy_values), context):
                return False
    return True


def _statement_applies(statement: dict[str, Any], check: Check, context: Context) -> bool:
    action = check.action
    if "Action" in statement:
        if not any(glob_match(p, action, ignore_case=True) for p in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(glob_match(p, action, ignore_case=True) for p in _as_list(statement["NotAction"])):
            return False
    else:
        return False
    if "Resource" in statement:
        if not any(arn_match(p, check.resource) for p in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(arn_match(p, check.resource) for p in _as_list(statement["NotResource"])):
            return False
    else:
        return False
    conditions = statement.get("Condition") or {}
    try:
        return _conditions_hold(conditions, context)
    except UnsupportedCondition as err:
        # Fail closed: an Allow that cannot be evaluated does not apply, a Deny does.
        print(f"iam: unsupported condition operator {err} (treated as failing closed)", file=sys.stderr)
        return statement.get("Effect") == "Deny"


def evaluate(documents: Iterable[dict[str, Any]], check: Check, context: Context) -> str:
    """'deny' (an explicit Deny applies), 'allow' or 'implicit' (nothing applies)."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if not isinstance(statement, dict) or not _statement_applies(statement, check, context):
                continue
            if statement.get("Effect") == "Deny":
                return "deny"
            if statement.get("Effect") == "Allow":
                allowed = True
    return "allow" if allowed else "implicit"


def decide(policies: Policies, check: Check, context: Context) -> str | None:
    """None when allowed, else why not (the tail of AWS's AccessDenied message)."""
    action = check.action
    layers = [("identity-based policy", policies.identity)]
    if policies.boundary is not None:
        layers.append(("permissions boundary", [policies.boundary]))
    if policies.session is not None:
        layers.append(("session policy", [policies.session]))
    verdicts = [(name, evaluate(docs, check, context)) for name, docs in layers]
    for name, verdict in verdicts:
        if verdict == "deny":
            return f"with an explicit deny in a {name}"
    for name, verdict in verdicts:
        if verdict != "allow":
            return f"because no {name} allows the {action} action"
    return None


# ---------------------------------------------------------------------------------------------
# The request


class GuardRequest:
    def __init__(self, environ: Environ, signer: Signer, account: str):
        self.environ = environ
        self.signer = signer
        self.account = account
        self.region = signer.region or "us-east-1"
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        raw_path = environ.get("PATH_INFO", "") or "/"
        self.path = raw_path.encode("latin-1", "replace").decode("utf-8", "replace")
        self.query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        self.target = environ.get("HTTP_X_AMZ_TARGET", "")
        self._body: bytes | None = None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def has(self, name: str) -> bool:
        return name in self.query

    @property
    def body(self) -> bytes:
        """The body, read once and put back so moto reads it too."""
        if self._body is None:
            environ = self.environ
            stream = environ.get("wsgi.input")
            length = environ.get("CONTENT_LENGTH") or ""
            if stream is None:
                body = b""
            elif environ.get("wsgi.input_terminated"):
                body = stream.read()
            elif length.strip().isdigit():
                body = stream.read(int(length))
            else:
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            self._body = body
        return self._body

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        parsed = json.loads(self.body)
        return parsed if isinstance(parsed, dict) else {}

    def form(self) -> dict[str, list[str]]:
        """Query parameters, plus a form body's (the query protocol sends either)."""
        params = dict(self.query)
        if self.environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            for name, values in urllib.parse.parse_qs(
                self.body.decode("utf-8", "replace"), keep_blank_values=True
            ).items():
                params.setdefault(name, values)
        return params

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{PARTITION}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )


# ---------------------------------------------------------------------------------------------
# Request -> the (action, resource) pairs AWS authorises


def dynamodb_checks(request: GuardRequest) -> list[Check]:
    op = request.target.split(".", 1)[1]
    body = request.json()

    def table_arn(name: str) -> str:
        return name if name.startswith("arn:") else request.arn("dynamodb", f"table/{name}")

    if op in ("BatchGetItem", "BatchWriteItem"):
        return [Check(f"dynamodb:{op}", table_arn(t)) for t in (body.get("RequestItems") or {})]
    if op == "TransactWriteItems":
        actions = {
            "Put": "PutItem",
            "Update": "UpdateItem",
            "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem",
        }
        checks = []
        for item in body.get("TransactItems") or []:
            for kind, action in actions.items():
                if kind in item:
                    name = item[kind]["TableName"]
                    keys = _leading_keys(request, name, item[kind].get("Key") or item[kind].get("Item"))
                    checks.append(Check(f"dynamodb:{action}", table_arn(name), keys))
        return checks
    if op == "TransactGetItems":
        return [
            Check("dynamodb:GetItem", table_arn(item["Get"]["TableName"]))
            for item in body.get("TransactItems") or []
            if "Get" in item
        ]
    table = body.get("TableName")
    if table:
        resource = table_arn(table)
        if op in ("Query", "Scan") and body.get("IndexName"):
            resource = f"{resource}/index/{body['IndexName']}"
        keys: Context = {}
        if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
            keys = _leading_keys(request, table, body.get("Key") or body.get("Item"))
        return [Check(f"dynamodb:{op}", resource, keys)]
    if body.get("ResourceArn"):
        return [Check(f"dynamodb:{op}", body["ResourceArn"])]
    # ListTables, DescribeLimits, PartiQL (the statement names the table; not parsed here), ...
    return [Check(f"dynamodb:{op}", "*")]


def _leading_keys(request: GuardRequest, table: str, item: Any) -> Context:
    """`dynamodb:LeadingKeys` of an item operation: the partition key value of the item it names
    (a Query's, in its key condition, is not read: no role here is conditioned on it)."""
    from moto.dynamodb.models import dynamodb_backends

    name = table.rsplit("/", 1)[-1] if table.startswith("arn:") else table
    try:
        hash_key = dynamodb_backends[request.account][request.region].get_table(name).hash_key_attr
    except Exception:  # noqa: BLE001 - no such table: moto answers that itself
        return {}
    value = (item or {}).get(hash_key) if isinstance(item, dict) else None
    if not isinstance(value, dict) or not value:
        return {}
    return {"dynamodb:leadingkeys": [str(next(iter(value.values())))]}


def streams_checks(request: GuardRequest) -> list[Check]:
    op = request.target.split(".", 1)[1]
    body = request.json()
    if op == "GetRecords":
        # moto's shard iterator is "{stream arn}|1|{id}".
        iterator = str(body.get("ShardIterator") or "")
        stream = iterator.split("|", 1)[0]
        return [Check("dynamodb:GetRecords", stream if stream.startswith("arn:") else "*")]
    if body.get("StreamArn"):
        return [Check(f"dynamodb:{op}", body["StreamArn"])]
    return [Check(f"dynamodb:{op}", "*")]


# SQS's batch calls are authorised as their single-message actions.
_SQS_ACTION = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _sqs_check(request: GuardRequest, op: str, queue_url: str | None, queue_name: str | None) -> Check:
    action = f"sqs:{_SQS_ACTION.get(op, op)}"
    account = request.account
    if queue_url:
        segments = [s for s in urllib.parse.urlsplit(queue_url).path.split("/") if s]
        if segments:
            queue_name = segments[-1]
        if len(segments) >= 2 and segments[-2].isdigit():
            account = segments[-2]
    if not queue_name:
        return Check(action, "*")
    return Check(action, f"arn:{PARTITION}:sqs:{request.region}:{account}:{queue_name}")


def sqs_json_checks(request: GuardRequest) -> list[Check]:
    op = request.target.split(".", 1)[1]
    body = request.json()
    return [_sqs_check(request, op, body.get("QueueUrl"), body.get("QueueName"))]


def sqs_query_checks(request: GuardRequest, params: dict[str, list[str]]) -> list[Check]:
    op = params["Action"][0]
    url = params.get("QueueUrl", [None])[0]
    name = params.get("QueueName", [None])[0]
    if not url and not name:
        # The query protocol may also address the queue by path: /{account}/{name}.
        segments = [s for s in request.path.split("/") if s]
        if len(segments) == 2 and segments[0].isdigit():
            url = request.path
    return [_sqs_check(request, op, url, name)]


def _ses_identity(request: GuardRequest, sender: str) -> str:
    from moto.ses.models import ses_backends

    _, address = parseaddr(sender)
    address = address or sender
    identities = ses_backends[request.account][request.region].email_identities
    identity = address if address in identities else address.rsplit("@", 1)[-1]
    return request.arn("ses", f"identity/{identity}")


def sesv2_checks(request: GuardRequest) -> list[Check]:
    if request.method == "POST" and request.path.rstrip("/") == "/v2/email/outbound-emails":
        body = request.json()
        identity_arn = body.get("FromEmailAddressIdentityArn")
        sender = body.get("FromEmailAddress")
        if not identity_arn and sender:
            identity_arn = _ses_identity(request, sender)
        checks = [Check("ses:SendEmail", identity_arn or "*")]
        if body.get("ConfigurationSetName"):
            checks.append(
                Check(
                    "ses:SendEmail",
                    request.arn("ses", f"configuration-set/{body['ConfigurationSetName']}"),
                )
            )
        return checks
    return [Check(f"ses:{_rest_operation(request, 'sesv2')}", "*")]


def _rest_operation(request: GuardRequest, service: str) -> str:
    from moto.core.request import Request
    from moto.core.routing import get_service_router

    try:
        operation, _ = get_service_router(service).match(Request(request.environ))
        return str(operation.name)
    except Exception:  # noqa: BLE001 - an unknown route is authorised as an unknown action
        return "Unknown"


def ses_v1_checks(request: GuardRequest, params: dict[str, list[str]]) -> list[Check]:
    op = params["Action"][0]
    if op in ("SendEmail", "SendRawEmail", "SendTemplatedEmail", "SendBulkTemplatedEmail"):
        source = params.get("Source", [None])[0]
        checks = [Check(f"ses:{op}", _ses_identity(request, source) if source else "*")]
        config_set = params.get("ConfigurationSetName", [None])[0]
        if config_set:
            checks.append(Check(f"ses:{op}", request.arn("ses", f"configuration-set/{config_set}")))
        return checks
    return [Check(f"ses:{op}", "*")]


def secretsmanager_checks(request: GuardRequest) -> list[Check]:
    """Secrets Manager's JSON operations on one secret, by its name or ARN (the webhook sources'
    signing keys: `secret:privacy-requests/sources/*` in the roles, which a name matches as the
    ARN AWS gives it, the name and a random suffix, does)."""
    op = request.target.split(".", 1)[1]
    secret = request.json().get("SecretId")
    if not secret:
        return [Check(f"secretsmanager:{op}", "*")]
    if secret.startswith("arn:"):
        return [Check(f"secretsmanager:{op}", secret)]
    return [Check(f"secretsmanager:{op}", request.arn("secretsmanager", f"secret:{secret}"))]


def kms_checks(request: GuardRequest) -> list[Check]:
    op = request.target.split(".", 1)[1]
    body = request.json()

    def key_arn(key_id: str) -> str:
        try:
            from moto.kms.models import kms_backends

            key_id = kms_backends[request.account][request.region].any_id_to_key_id(key_id)
        except Exception:  # noqa: BLE001 - an unknown alias is authorised as written
            pass
        if key_id.startswith("arn:"):
            return key_id
        return request.arn("kms", key_id if key_id.startswith("alias/") else f"key/{key_id}")

    if op == "ReEncrypt":
        checks = []
        if body.get("SourceKeyId"):
            checks.append(Check("kms:ReEncryptFrom", key_arn(body["SourceKeyId"])))
        if body.get("DestinationKeyId"):
            checks.append(Check("kms:ReEncryptTo", key_arn(body["DestinationKeyId"])))
        return checks or [Check("kms:ReEncryptFrom", "*")]
    if body.get("KeyId"):
        return [Check(f"kms:{op}", key_arn(body["KeyId"]))]
    if op == "Decrypt" and body.get("CiphertextBlob"):
        # moto's ciphertext starts with the 36-character id of its key.
        try:
            key_id = base64.b64decode(body["CiphertextBlob"])[:36].decode("ascii")
            return [Check("kms:Decrypt", key_arn(key_id))]
        except Exception:  # noqa: BLE001 - not moto's ciphertext: authorise on "*"
            pass
    return [Check(f"kms:{op}", "*")]


# Bucket sub-resources -> the action per method (GET, PUT, DELETE).
_BUCKET_SUBRESOURCES: dict[str, tuple[str, str, str]] = {
    "policy": ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    "acl": ("GetBucketAcl", "PutBucketAcl", "PutBucketAcl"),
    "tagging": ("GetBucketTagging", "PutBucketTagging", "PutBucketTagging"),
    "cors": ("GetBucketCORS", "PutBucketCORS", "PutBucketCORS"),
    "lifecycle": (
        "GetLifecycleConfiguration",
        "PutLifecycleConfiguration",
        "PutLifecycleConfiguration",
    ),
    "versioning": ("GetBucketVersioning", "PutBucketVersioning", "PutBucketVersioning"),
    "encryption": (
        "GetEncryptionConfiguration",
        "PutEncryptionConfiguration",
        "PutEncryptionConfiguration",
    ),
    "notification": ("GetBucketNotification", "PutBucketNotification", "PutBucketNotification"),
    "website": ("GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"),
    "logging": ("GetBucketLogging", "PutBucketLogging", "PutBucketLogging"),
    "object-lock": (
        "GetBucketObjectLockConfiguration",
        "PutBucketObjectLockConfiguration",
        "PutBucketObjectLockConfiguration",
    ),
    "publicAccessBlock": (
        "GetBucketPublicAccessBlock",
        "PutBucketPublicAccessBlock",
        "PutBucketPublicAccessBlock",
    ),
    "ownershipControls": (
        "GetBucketOwnershipControls",
        "PutBucketOwnershipControls",
        "PutBucketOwnershipControls",
    ),
    "policyStatus": ("GetBucketPolicyStatus", "GetBucketPolicyStatus", "GetBucketPolicyStatus"),
    "replication": (
        "GetReplicationConfiguration",
        "PutReplicationConfiguration",
        "PutReplicationConfiguration",
    ),
    "accelerate": (
        "GetAccelerateConfiguration",
        "PutAccelerateConfiguration",
        "PutAccelerateConfiguration",
    ),
    "requestPayment": ("GetBucketRequestPayment", "PutBucketRequestPayment", "PutBucketRequestPayment"),
    "location": ("GetBucketLocation", "GetBucketLocation", "GetBucketLocation"),
    "uploads": ("ListBucketMultipartUploads", "ListBucketMultipartUploads", "ListBucketMultipartUploads"),
}

# Object sub-resources -> (action, its versioned form) per method (GET, PUT, DELETE).
_OBJECT_SUBRESOURCES: dict[str, tuple[str, str, str]] = {
    "acl": ("GetObjectAcl", "PutObjectAcl", "PutObjectAcl"),
    "tagging": ("GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging"),
    "retention": ("GetObjectRetention", "PutObjectRetention", "PutObjectRetention"),
    "legal-hold": ("GetObjectLegalHold", "PutObjectLegalHold", "PutObjectLegalHold"),
    "attributes": ("GetObjectAttributes", "GetObjectAttributes", "GetObjectAttributes"),
    "torrent": ("GetObjectTorrent", "GetObjectTorrent", "GetObjectTorrent"),
}
_VERSIONED = {
    "GetObject": "GetObjectVersion",
    "DeleteObject": "DeleteObjectVersion",
    "GetObjectAcl": "GetObjectVersionAcl",
    "PutObjectAcl": "PutObjectVersionAcl",
    "GetObjectTagging": "GetObjectVersionTagging",
    "PutObjectTagging": "PutObjectVersionTagging",
    "DeleteObjectTagging": "DeleteObjectVersionTagging",
    "GetObjectAttributes": "GetObjectVersionAttributes",
}


def _bucket_and_key(request: GuardRequest) -> tuple[str, str]:
    host = request.environ.get("HTTP_HOST", "").split(":", 1)[0]
    path = request.path.lstrip("/")
    # Virtual-hosted style ({bucket}.s3.… or {bucket}.localhost); the emulator is mostly path-style.
    labels = host.split(".")
    if len(labels) > 1 and (labels[1].startswith("s3") or host.endswith(".localhost")):
        return labels[0], path
    bucket, _, key = path.partition("/")
    return bucket, key


def _decode_aws_chunked(body: bytes) -> bytes:
    out = bytearray()
    rest = body
    while rest:
        header, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(header.split(b";", 1)[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


def s3_checks(request: GuardRequest) -> list[Check]:
    bucket, key = _bucket_and_key(request)
    method = request.method
    if not bucket:
        return [Check("s3:ListAllMyBuckets", "*")]
    bucket_arn = f"arn:{PARTITION}:s3:::{bucket}"
    object_arn = f"{bucket_arn}/{key}"
    versioned = request.has("versionId")
    index = {"GET": 0, "HEAD": 0, "PUT": 1, "DELETE": 2}.get(method)

    def object_action(action: str) -> str:
        return f"s3:{_VERSIONED.get(action, action) if versioned else action}"

    if key:
        if index is not None:
            for name, actions in _OBJECT_SUBRESOURCES.items():
                if request.has(name):
                    return [Check(object_action(actions[index]), object_arn)]
        if method in ("GET", "HEAD"):
            if request.has("uploadId"):
                return [Check("s3:ListMultipartUploadParts", object_arn)]
            return [Check(object_action("GetObject"), object_arn)]
        if method == "DELETE":
            if request.has("uploadId"):
                return [Check("s3:AbortMultipartUpload", object_arn)]
            return [Check(object_action("DeleteObject"), object_arn)]
        if method in ("PUT", "POST"):
            if method == "POST" and request.has("restore"):
                return [Check("s3:RestoreObject", object_arn)]
            if method == "POST" and request.has("select"):
                return [Check("s3:GetObject", object_arn)]
            context: Context = {}
            headers = {
                "s3:x-amz-server-side-encryption": "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION",
                "s3:x-amz-server-side-encryption-aws-kms-key-id": (
                    "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_AWS_KMS_KEY_ID"
                ),
                "s3:x-amz-acl": "HTTP_X_AMZ_ACL",
            }
            for context_key, header in headers.items():
                if header in request.environ:
                    context[context_key] = [request.environ[header]]
            checks = [Check("s3:PutObject", object_arn, context)]
            copy_source = request.environ.get("HTTP_X_AMZ_COPY_SOURCE")
            if copy_source and method == "PUT":
                source = urllib.parse.unquote(copy_source.split("?", 1)[0]).lstrip("/")
                action = "s3:GetObjectVersion" if "versionId=" in copy_source else "s3:GetObject"
                checks.append(Check(action, f"arn:{PARTITION}:s3:::{source}"))
            return checks
        return [Check(f"s3:{method.title()}Object", object_arn)]

    if method == "POST":
        if request.has("delete"):
            return _delete_objects_checks(request, bucket_arn)
        # A browser form upload: the key is in the form; authorised on the bucket's objects.
        return [Check("s3:PutObject", f"{bucket_arn}/*")]
    if index is not None:
        for name, actions in _BUCKET_SUBRESOURCES.items():
            if request.has(name):
                return [Check(f"s3:{actions[index]}", bucket_arn)]
    if method in ("GET", "HEAD"):
        prefix = {"s3:prefix": [request.param("prefix") or ""]}
        if request.has("versions"):
            return [Check("s3:ListBucketVersions", bucket_arn, prefix)]
        return [Check("s3:ListBucket", bucket_arn, prefix)]
    if method == "PUT":
        return [Check("s3:CreateBucket", bucket_arn)]
    return [Check("s3:DeleteBucket", bucket_arn)]


def _delete_objects_checks(request: GuardRequest, bucket_arn: str) -> list[Check]:
    body = request.body
    encoding = request.environ.get("HTTP_CONTENT_ENCODING", "")
    if "aws-chunked" in encoding or request.environ.get(
        "HTTP_X_AMZ_CONTENT_SHA256", ""
    ).startswith("STREAMING-"):
        body = _decode_aws_chunked(body)
    root = ET.fromstring(body)
    checks = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Object":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in element}
        action = "s3:DeleteObjectVersion" if fields.get("VersionId") else "s3:DeleteObject"
        checks.append(Check(action, f"{bucket_arn}/{fields.get('Key', '')}"))
    return checks


# ---------------------------------------------------------------------------------------------
# Responses


def _json_response(
    start_response: StartResponse, status: str, body: dict[str, Any], headers: list[tuple[str, str]]
) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("Content-Length", str(len(payload))),
            ("x-amzn-RequestId", "iam-guard"),
            *headers,
        ],
    )
    return [payload]


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _s3_response(
    start_response: StartResponse, method: str, code: str, message: str
) -> list[bytes]:
    payload = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{_xml_escape(message)}</Message>"
        "<RequestId>iam-guard</RequestId></Error>"
    ).encode()
    start_response(
        "403 Forbidden",
        [
            ("Content-Type", "application/xml"),
            ("Content-Length", "0" if method == "HEAD" else str(len(payload))),
            ("x-amz-request-id", "iam-guard"),
        ],
    )
    return [] if method == "HEAD" else [payload]


def _query_response(start_response: StartResponse, code: str, message: str) -> list[bytes]:
    payload = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{code}</Code><Message>{_xml_escape(message)}</Message></Error>"
        "<RequestId>iam-guard</RequestId></ErrorResponse>"
    ).encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


def refuse(
    start_response: StartResponse, protocol: str, method: str, message: str, invalid_key: bool = False
) -> list[bytes]:
    """The calling service's own AccessDenied (or unknown-key) error."""
    if protocol in ("dynamodb", "streams"):
        if invalid_key:
            body = {"__type": "com.amazon.coral.service#UnrecognizedClientException", "message": message}
        else:
            body = {"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException", "message": message}
        return _json_response(start_response, "400 Bad Request", body, [])
    if protocol == "sqs-json":
        code = "InvalidClientTokenId" if invalid_key else "AccessDenied"
        return _json_response(
            start_response,
            "403 Forbidden",
            {"__type": f"com.amazonaws.sqs#{code}", "message": message},
            [("x-amzn-query-error", f"{code};Sender")],
        )
    if protocol == "json":
        code = "UnrecognizedClientException" if invalid_key else "AccessDeniedException"
        return _json_response(start_response, "400 Bad Request", {"__type": code, "message": message}, [])
    if protocol == "rest-json":
        code = "UnrecognizedClientException" if invalid_key else "AccessDeniedException"
        return _json_response(
            start_response, "403 Forbidden", {"message": message}, [("x-amzn-ErrorType", code)]
        )
    if protocol == "s3":
        return _s3_response(start_response, method, "InvalidAccessKeyId" if invalid_key else "AccessDenied", message)
    return _query_response(start_response, "InvalidClientTokenId" if invalid_key else "AccessDenied", message)


# ---------------------------------------------------------------------------------------------
# The middleware


_ADDRESS = re.compile(r"[^/\s:]+@")


class IamGuard:
    """WSGI middleware: role-signed requests need their role's permission; all else passes."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)
        signer = signer_of(environ)
        if signer is None or signer.key == DEVELOPER_KEY:
            return self.app(environ, start_response)
        protocol = self._protocol(environ, signer)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        session = find_session(signer.key)
        if session is None:
            print("iam: rejected a request signed with an unknown access key", file=sys.stderr)
            message = (
                "The AWS Access Key Id you provided does not exist in our records."
                if protocol == "s3"
                else "The security token included in the request is invalid."
            )
            return refuse(start_response, protocol, method, message, invalid_key=True)
        if session_token_of(environ) != session.session_token:
            print("iam: rejected a role key without its session token", file=sys.stderr)
            message = "The provided token is malformed or otherwise invalid."
            return refuse(start_response, protocol, method, message, invalid_key=True)
        request = GuardRequest(environ, signer, session.account_id)
        try:
            checks = self._checks(request, protocol)
            policies = policies_of(session)
            base: Context = {
                "aws:principalarn": [session.role_arn],
                "aws:principalaccount": [session.account_id],
                "aws:requestedregion": [request.region],
            }
            for check in checks:
                reason = decide(policies, check, {**base, **check.context})
                if reason is not None:
                    return self._deny(start_response, protocol, method, session, check, reason)
        except Refusal as refusal:
            return self._deny(start_response, protocol, method, session, refusal.check, refusal.reason)
        except Exception as err:  # noqa: BLE001 - fail closed, and say so
            check = Check("unknown", "*")
            reason = f"because the emulator's IAM guard could not read the request ({type(err).__name__})"
            return self._deny(start_response, protocol, method, session, check, reason)
        return self.app(environ, start_response)

    @staticmethod
    def _protocol(environ: Environ, signer: Signer) -> str:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDBStreams_"):
            return "streams"
        if target.startswith("DynamoDB_"):
            return "dynamodb"
        if target.startswith("AmazonSQS."):
            return "sqs-json"
        if target:
            return "json"
        path = environ.get("PATH_INFO", "")
        if path.startswith("/v2/email"):
            return "rest-json"
        query_protocol = (
            "Action=" in environ.get("QUERY_STRING", "")
            or environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded")
        )
        if signer.service == "s3" or (signer.service is None and not query_protocol):
            return "s3"
        if query_protocol:
            return "query"
        return "rest-json"

    @staticmethod
    def _checks(request: GuardRequest, protocol: str) -> list[Check]:
        if protocol == "dynamodb":
            return dynamodb_checks(request)
        if protocol == "streams":
            return streams_checks(request)
        if protocol == "sqs-json":
            return sqs_json_checks(request)
        if protocol == "s3":
            return s3_checks(request)
        if protocol == "rest-json" and request.path.startswith("/v2/email"):
            return sesv2_checks(request)
        if protocol == "json" and request.target.startswith("TrentService."):
            return kms_checks(request)
        if protocol == "json" and request.target.startswith("secretsmanager."):
            return secretsmanager_checks(request)
        service = request.signer.service or "unknown"
        if protocol == "query":
            params = request.form()
            op = (params.get("Action") or ["Unknown"])[0]
            if service == "sqs":
                return sqs_query_checks(request, params)
            if service in ("ses", "email"):
                return ses_v1_checks(request, params)
            if service == "sts" and op == "GetCallerIdentity":
                return []
        else:
            op = request.target.split(".", 1)[-1] if request.target else "Unknown"
        check = Check(f"{service}:{op}", "*")
        raise Refusal(
            check,
            f"because the emulator's IAM guard does not authorise {service} calls made with role credentials",
        )

    @staticmethod
    def _deny(
        start_response: StartResponse,
        protocol: str,
        method: str,
        session: Any,
        check: Check,
        reason: str,
    ) -> list[bytes]:
        role = session.role_arn.rsplit("/", 1)[-1]
        # Addresses stay out of the log (an SES identity ARN may name one).
        resource = _ADDRESS.sub("…@", check.resource)
        print(f"iam: denied {check.action} on {resource} for role {role}", file=sys.stderr, flush=True)
        message = (
            f"User: {session.arn} is not authorized to perform: {check.action} "
            f"on resource: {check.resource} {reason}"
        )
        return refuse(start_response, protocol, method, message)
