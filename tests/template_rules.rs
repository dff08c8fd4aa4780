//! Rules the deployed template must keep, checked by reading it (no emulator needed): routes,
//! roles, queues, alarms, and the environment each function is given.

use devstack::template::{self, Template};
use privacy_shared::store::DUE_INDEX;
use serde_norway::Value;

#[test]
fn there_are_ten_functions_each_built_from_its_own_binary() {
    let template = Template::load(&template::default_path()).unwrap();
    let mut binaries: Vec<&str> = template
        .resources_of_type("AWS::Serverless::Function")
        .iter()
        .map(|id| binary(&template, id))
        .collect();
    binaries.sort_unstable();
    assert_eq!(
        binaries,
        [
            "admin",
            "dispatch",
            "download",
            "erasure",
            "export",
            "intake",
            "mail-events",
            "reminders",
            "source-callback",
            "verify"
        ]
    );
}

fn binary<'a>(template: &'a Template, function: &str) -> &'a str {
    template.raw()["Resources"][function]["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap()
}

/// The variables the template gives a function (the globals and its own), with the values it
/// would see on a deploy with the parameters' defaults (a sample where the value is a resource).
fn given_environment(template: &Template, function: &str) -> Vec<(String, String)> {
    let sample = |name: &str| match name {
        "MAIL_FROM" => "privacy@example.com",
        "STAFF_ADDRESS" => "privacy-team@example.com",
        "PUBLIC_BASE_URL" => "https://privacy.example.com",
        "STATUS_LINK_KEY" => "a-sample-of-the-generated-48-character-secret-xyz",
        "TOMBSTONE_KEY" => "a-sample-of-the-generated-48-character-secret-abc",
        _ => "resource-name",
    };
    let globals = &template.raw()["Globals"]["Function"]["Environment"]["Variables"];
    let own = &template.raw()["Resources"][function]["Properties"]["Environment"]["Variables"];
    let mut given = Vec::new();
    for variables in [globals, own] {
        for (name, value) in variables.as_mapping().into_iter().flatten() {
            let name = name.as_str().unwrap().to_owned();
            let value = match (value, intrinsic(value)) {
                (Value::String(literal), _) => literal.clone(),
                (_, Some(("Ref", parameter))) => template.raw()["Parameters"][parameter]["Default"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| {
                        template.raw()["Parameters"][parameter]["Default"].as_u64().map(|n| n.to_string())
                    })
                    .unwrap_or_else(|| sample(&name).to_owned()),
                _ => sample(&name).to_owned(),
            };
            given.push((name, value));
        }
    }
    given
}

#[test]
fn each_function_reads_exactly_the_variables_the_template_gives_it() {
    use privacy_shared::config::{Env, Function, LOCAL_ONLY};
    use std::collections::BTreeSet;
    let template = Template::load(&template::default_path()).unwrap();
    for id in template.resources_of_type("AWS::Serverless::Function") {
        let name = binary(&template, &id);
        let given = given_environment(&template, &id);
        let pairs: Vec<(&str, &str)> = given.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let env = Env::from_pairs(&pairs);
        // source-callback's settings are its crate's own (the table and the data map).
        let loaded = match name {
            "source-callback" => source_callback::CallbackSettings::load(&env).map(drop),
            _ => Function::ALL.into_iter().find(|f| f.name() == name).unwrap().load(&env),
        };
        loaded.unwrap_or_else(|e| panic!("{name} does not start with the template's settings: {e}"));
        let read: BTreeSet<&str> = env.names_read().into_iter().filter(|n| !LOCAL_ONLY.contains(n)).collect();
        let given: BTreeSet<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(read, given, "{name}: variables read (left) and given by the template (right)");
    }
}

#[test]
fn the_export_role_may_read_every_source_of_the_data_map_and_nothing_else_is_needed() {
    use privacy_shared::datamap::{DataMap, Location};
    let text = std::fs::read_to_string(template::default_path()).unwrap();
    let map = DataMap::builtin().unwrap();
    for source in map.sources() {
        let needed: Vec<String> = match &source.location {
            Location::Table { table, index: None, .. } => vec![format!(":table/{table}\n")],
            Location::Table { table, index: Some(index), .. } => {
                vec![format!(":table/{table}/index/{index}\n")]
            }
            Location::Objects { bucket, prefix, .. } => {
                let fixed = prefix.split('{').next().unwrap_or_default();
                vec![format!("s3:::{bucket}\n"), format!("s3:::{bucket}/{fixed}*\n")]
            }
            // Its signing secret (by the roles' prefix); the call itself leaves AWS.
            Location::Webhook { auth: privacy_shared::datamap::WebhookAuth::Hmac { secret }, .. } => {
                assert!(secret.starts_with("privacy-requests/sources/"), "{secret}");
                vec![":secret:privacy-requests/sources/*".to_owned()]
            }
            Location::Webhook { .. } | Location::Manual { .. } => vec![],
        };
        for arn in needed {
            assert!(text.contains(&arn), "ExportRole lacks {arn:?} for data map source {}", source.id);
        }
    }
}

// ------------------------------------------------------------------ the sweep and the staff API

/// `!Tag value` as (tag, value), for the template's intrinsic functions; for `!Sub [text,
/// variables]` the text.
fn intrinsic(value: &Value) -> Option<(&str, &str)> {
    match value {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let known = ["Ref", "GetAtt", "Sub"].into_iter().find(|k| *k == tag)?;
            match &t.value {
                Value::Sequence(parts) if known == "Sub" => Some((known, parts.first()?.as_str()?)),
                text => Some((known, text.as_str()?)),
            }
        }
        _ => None,
    }
}

fn resource<'a>(template: &'a Template, id: &str) -> &'a Value {
    let resource = &template.raw()["Resources"][id];
    assert!(!resource.is_null(), "the template has no {id}");
    resource
}

/// A value or a list of values as a list.
fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// Every HttpApi event of every function: (function logical id, event properties).
fn http_api_events(template: &Template) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    for id in template.resources_of_type("AWS::Serverless::Function") {
        if let Some(map) = resource(template, &id)["Properties"]["Events"].as_mapping() {
            for (_, event) in map {
                if event["Type"].as_str() == Some("HttpApi") {
                    events.push((id.clone(), event["Properties"].clone()));
                }
            }
        }
    }
    events
}

const STAFF_ROUTES: [(&str, &str); 19] = [
    ("GET", "/staff/requests"),
    ("POST", "/staff/requests"),
    ("GET", "/staff/requests/{id}"),
    ("POST", "/staff/requests/{id}/extend"),
    ("POST", "/staff/requests/{id}/deny"),
    ("POST", "/staff/requests/{id}/excessive"),
    ("POST", "/staff/requests/{id}/complete"),
    ("POST", "/staff/requests/{id}/receipt-confirmation"),
    ("POST", "/staff/requests/{id}/fee-acceptance"),
    ("POST", "/staff/requests/{id}/dispute"),
    ("POST", "/staff/requests/{id}/restriction-lifting"),
    ("POST", "/staff/requests/{id}/sources/{source}/uploads"),
    ("POST", "/staff/requests/{id}/sources/{source}/access"),
    ("POST", "/staff/requests/{id}/sources/{source}/erasure"),
    ("POST", "/staff/suppressions/check"),
    ("POST", "/staff/erasures/replays"),
    ("GET", "/staff/erasures/replays/{run}"),
    ("GET", "/staff/reports/{year}"),
    ("GET", "/staff/reports/{year}/records"),
];

/// The one route other systems may call (SuppressionCheckPolicy).
const SUPPRESSION_CHECK: (&str, &str) = ("POST", "/staff/suppressions/check");

#[test]
fn every_staff_api_route_requires_aws_iam() {
    let template = Template::load(&template::default_path()).unwrap();
    let api = resource(&template, "StaffApi");
    assert_eq!(api["Type"].as_str(), Some("AWS::Serverless::HttpApi"));
    assert_eq!(api["Properties"]["Auth"]["DefaultAuthorizer"].as_str(), Some("AWS_IAM"));
    assert_eq!(api["Properties"]["Auth"]["EnableIamAuthorizer"].as_bool(), Some(true));

    let mut staff_routes = Vec::new();
    for (function, event) in http_api_events(&template) {
        let path = event["Path"].as_str().unwrap().to_owned();
        let method = event["Method"].as_str().unwrap().to_uppercase();
        let on_staff_api = intrinsic(&event["ApiId"]) == Some(("Ref", "StaffApi"));
        assert_eq!(on_staff_api, path.starts_with("/staff/"), "{method} {path} is on the wrong API");
        if !on_staff_api {
            continue;
        }
        assert_eq!(function, "AdminFunction", "{method} {path}");
        // No route overrides the default with another authoriser (or NONE).
        let authorizer = &event["Auth"]["Authorizer"];
        assert!(
            authorizer.is_null() || authorizer.as_str() == Some("AWS_IAM"),
            "{method} {path} overrides the AWS_IAM authoriser"
        );
        staff_routes.push((method, path));
    }
    staff_routes.sort();
    let mut expected: Vec<(String, String)> =
        STAFF_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    assert_eq!(staff_routes, expected);

    // The policy the staff get allows exactly those routes of that API.
    let policy = resource(&template, "StaffInvokePolicy");
    let statements = policy["Properties"]["PolicyDocument"]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"].as_str(), Some("execute-api:Invoke"));
    let mut granted: Vec<String> = one_or_many(&statements[0]["Resource"])
        .into_iter()
        .map(|r| {
            let (tag, arn) = intrinsic(r).expect("an ARN built with !Sub");
            assert_eq!(tag, "Sub");
            arn.split_once(":${StaffApi}/*/").expect("an ARN of StaffApi, any stage").1.to_owned()
        })
        .collect();
    granted.sort();
    let mut routes: Vec<String> = STAFF_ROUTES
        .iter()
        .map(|(m, p)| {
            format!(
                "{m}{}",
                p.replace("{id}", "*").replace("{source}", "*").replace("{year}", "*").replace("{run}", "*")
            )
        })
        .collect();
    routes.sort();
    assert_eq!(granted, routes);
}

#[test]
fn no_function_of_the_deployed_stack_sets_the_local_staff_key_or_an_endpoint() {
    const LOCAL_ONLY: [&str; 2] = ["STAFF_LOCAL_KEY", "AWS_ENDPOINT_URL"];
    let text = std::fs::read_to_string(template::default_path()).unwrap();
    for name in LOCAL_ONLY {
        assert!(!text.contains(name), "the template mentions {name}");
    }
    let template = Template::load(&template::default_path()).unwrap();
    let mut environments = vec![template.raw()["Globals"]["Function"]["Environment"]["Variables"].clone()];
    for kind in ["AWS::Serverless::Function", "AWS::Lambda::Function"] {
        for id in template.resources_of_type(kind) {
            environments.push(resource(&template, &id)["Properties"]["Environment"]["Variables"].clone());
        }
    }
    for variables in &environments {
        for name in LOCAL_ONLY {
            assert!(variables.get(name).is_none(), "a function's environment sets {name}");
        }
    }
}

#[test]
fn the_reminders_schedule_invokes_the_sweep_daily_with_retries_and_a_dead_letter_queue() {
    let template = Template::load(&template::default_path()).unwrap();
    let schedules = template.resources_of_type("AWS::Scheduler::Schedule");
    assert_eq!(schedules.len(), 1);
    let schedule = &resource(&template, &schedules[0])["Properties"];
    assert_eq!(schedule["ScheduleExpression"].as_str(), Some("cron(0 7 * * ? *)"));
    assert_eq!(intrinsic(&schedule["ScheduleExpressionTimezone"]), Some(("Ref", "BusinessTimeZone")));
    let target = &schedule["Target"];
    assert_eq!(intrinsic(&target["Arn"]), Some(("GetAtt", "RemindersFunction.Arn")));
    let input: serde_json::Value = serde_json::from_str(target["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({"sweep": "daily"}));
    assert!(target["RetryPolicy"]["MaximumRetryAttempts"].as_u64().is_some_and(|n| n > 0));
    assert!(target["RetryPolicy"]["MaximumEventAgeInSeconds"].as_u64().is_some());
    let (_, dlq) = intrinsic(&target["DeadLetterConfig"]["Arn"]).expect("a dead-letter queue");
    let dlq = dlq.strip_suffix(".Arn").unwrap();
    assert_eq!(dlq, "RemindersDeadLetterQueue");
    let queue = resource(&template, dlq);
    assert_eq!(queue["Type"].as_str(), Some("AWS::SQS::Queue"));
    assert!(!queue["Properties"]["KmsMasterKeyId"].is_null(), "the dead-letter queue is encrypted");
    assert!(queue["Properties"]["FifoQueue"].is_null(), "the scheduler needs a standard queue");

    // The scheduler's role may invoke that one function (and describe a failure in the DLQ).
    let (_, role) = intrinsic(&target["RoleArn"]).unwrap();
    let role = resource(&template, role.strip_suffix(".Arn").unwrap());
    let invoke: Vec<&Value> = statements(role)
        .into_iter()
        .filter(|s| actions(s).contains(&"lambda:InvokeFunction".to_owned()))
        .collect();
    assert_eq!(invoke.len(), 1);
    let resources = one_or_many(&invoke[0]["Resource"]);
    assert_eq!(resources.len(), 1);
    assert_eq!(intrinsic(resources[0]), Some(("GetAtt", "RemindersFunction.Arn")));

    // Never two sweeps at once (with ReservedConcurrency on; the ledger guards without it); a
    // failed sweep is retried by Lambda, then dead-lettered.
    let function = &resource(&template, "RemindersFunction")["Properties"];
    assert_eq!(reserved_concurrency(function), Some(1));
    assert_eq!(function["EventInvokeConfig"]["MaximumRetryAttempts"].as_u64(), Some(2));
    assert!(function["EventInvokeConfig"]["MaximumEventAgeInSeconds"].as_u64().is_some());
    assert_eq!(
        intrinsic(&function["DeadLetterQueue"]["TargetArn"]),
        Some(("GetAtt", "RemindersDeadLetterQueue.Arn"))
    );
}

#[test]
fn the_overdue_alarm_watches_the_metric_the_sweep_publishes() {
    let template = Template::load(&template::default_path()).unwrap();
    let env = &resource(&template, "RemindersFunction")["Properties"]["Environment"]["Variables"];
    let alarm = &resource(&template, "OverdueRequestsAlarm")["Properties"];
    assert_eq!(alarm["Namespace"].as_str(), env["METRICS_NAMESPACE"].as_str());
    assert_eq!(alarm["Namespace"].as_str(), Some("PrivacyRequests"));
    assert_eq!(alarm["MetricName"].as_str(), Some("OverdueRequests"));
    let dimensions = alarm["Dimensions"].as_sequence().unwrap();
    assert_eq!(dimensions.len(), 1);
    assert_eq!(dimensions[0]["Name"].as_str(), Some("Stack"));
    assert_eq!(intrinsic(&dimensions[0]["Value"]), Some(("Ref", "AWS::StackName")));
    assert_eq!(intrinsic(&env["STACK_NAME"]), Some(("Ref", "AWS::StackName")));
}

#[test]
fn a_spent_mail_budget_is_counted_from_intakes_log_line_and_wakes_staff() {
    let template = Template::load(&template::default_path()).unwrap();
    let text = std::fs::read_to_string("../shared/src/intake/accept.rs").unwrap();
    assert!(text.contains("\"mail budget spent: nothing sent\""), "the line the filters count");
    let mut counted = Vec::new();
    for id in template.resources_of_type("AWS::Logs::MetricFilter") {
        let filter = &resource(&template, &id)["Properties"];
        if filter["FilterPattern"].as_str().is_some_and(|p| p.contains("\"mail budget spent: nothing sent\""))
        {
            assert_eq!(intrinsic(&filter["LogGroupName"]), Some(("Ref", "IntakeLogs")));
            let metric = &filter["MetricTransformations"][0];
            assert_eq!(metric["MetricName"].as_str(), Some("MailBudgetSpent"));
            counted.push(metric["Dimensions"].as_sequence().map_or(0, Vec::len));
        }
    }
    counted.sort_unstable();
    assert_eq!(counted, [0, 1], "a total for the alarm and one by scope");
    let alarm = &resource(&template, "MailBudgetSpentAlarm")["Properties"];
    assert_eq!(alarm["MetricName"].as_str(), Some("MailBudgetSpent"));
    assert!(alarm["Dimensions"].is_null(), "the alarm watches the total");
    assert_eq!(intrinsic(&alarm["AlarmActions"][0]), Some(("Ref", "AlarmTopic")));
}

#[test]
fn the_due_date_index_projects_no_personal_data() {
    let spec = Template::load(&template::default_path()).unwrap().the_table().unwrap();
    let index = spec.global_secondary_indexes.iter().find(|g| g.index_name == DUE_INDEX).unwrap();
    assert_eq!(index.projection.projection_type, "INCLUDE", "never ALL: the item holds personal data");
    let projected = &index.projection.non_key_attributes;
    for personal in ["email", "name", "details", "subject", "address"] {
        assert!(
            !projected.iter().any(|a| a.contains(personal)),
            "the index projects personal data ({personal}): {projected:?}"
        );
    }
    for needed in [
        "request_id",
        "status",
        "kind",
        "regime",
        "language",
        "received_at",
        "due_on",
        "original_due_on",
        "acknowledge_by",
        "acknowledged_at",
        "updated_at",
        "version",
    ] {
        assert!(projected.iter().any(|a| a == needed), "the index does not project {needed}");
    }
}

fn statements(role: &Value) -> Vec<&Value> {
    role["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().unwrap().iter())
        .collect()
}

fn actions(statement: &Value) -> Vec<String> {
    one_or_many(&statement["Action"]).into_iter().map(|a| a.as_str().unwrap().to_owned()).collect()
}

/// The X-Ray actions of active tracing. X-Ray has no resource-level permissions: `"*"` is the only
/// resource they take, so a statement of exactly these on `"*"` is the one wildcard a role may hold.
const TRACE_ACTIONS: [&str; 2] = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"];

fn writes_traces(statement: &Value) -> bool {
    let mut granted = actions(statement);
    granted.sort();
    granted == TRACE_ACTIONS && statement["Resource"].as_str() == Some("*")
}

#[test]
fn the_admin_and_reminders_roles_grant_no_wildcard_action_or_resource() {
    let template = Template::load(&template::default_path()).unwrap();
    for (function, role) in [
        ("AdminFunction", "AdminRole"),
        ("RemindersFunction", "RemindersRole"),
        ("", "RemindersScheduleRole"),
        ("MailEventsFunction", "MailEventsRole"),
    ] {
        if !function.is_empty() {
            let uses = &resource(&template, function)["Properties"]["Role"];
            assert_eq!(intrinsic(uses), Some(("GetAtt", format!("{role}.Arn").as_str())));
        }
        for statement in statements(resource(&template, role)) {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{role}");
            assert!(statement["NotAction"].is_null() && statement["NotResource"].is_null(), "{role}");
            for action in actions(statement) {
                assert!(!action.contains('*'), "{role} grants {action}");
                assert_ne!(action, "cloudwatch:PutMetricData", "{role}: metrics go through the log (EMF)");
            }
            if writes_traces(statement) {
                continue;
            }
            for resource in one_or_many(&statement["Resource"]) {
                let arn = arn_text(resource);
                // Only a log group's streams (`${…Logs.Arn}:*`) end in a wildcard.
                let log_streams = arn.starts_with("${") && arn.ends_with("Logs.Arn}:*");
                // And the admin's files for manual sources: objects under one prefix.
                let staging = role == "AdminRole" && arn == "${ExportBucket.Arn}/staging/*";
                assert!(!arn.contains('*') || log_streams || staging, "{role} grants {arn}");
            }
        }
    }
    let admin = statements(resource(&template, "AdminRole"));
    let mail: Vec<String> = admin.into_iter().flat_map(actions).filter(|a| a.starts_with("ses:")).collect();
    assert_eq!(
        mail,
        ["ses:SendEmail"],
        "the admin sends only the verification email of a request staff enter"
    );
}

#[test]
fn every_api_route_of_the_template_is_routed_locally_to_its_function() {
    let template = Template::load(&template::default_path()).unwrap();
    let manifest =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .unwrap();
    let router = manifest.split("[workspace.metadata.lambda.watch.router]").nth(1).expect("a local router");
    for (function, event) in http_api_events(&template) {
        let binary =
            resource(&template, &function)["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        // A path's methods are one list: `"/path" = [{ method = …, function = … }, …]`.
        let path = format!("\"{}\" = [", event["Path"].as_str().unwrap());
        let route = format!(
            "{{ method = \"{}\", function = \"{binary}\" }}",
            event["Method"].as_str().unwrap().to_uppercase()
        );
        let line = router.lines().find(|l| l.starts_with(&path));
        assert!(line.is_some_and(|l| l.contains(&route)), "the local router lacks {path}{route}]");
    }
}

// ------------------------------------------------------------------ erasure, triage, suppression check

/// A resource of a policy statement as text: the `!Sub` string, `X.Arn` of a `!GetAtt`, or the
/// literal.
fn arn_text(resource: &Value) -> String {
    match intrinsic(resource) {
        Some((_, arn)) => arn.to_owned(),
        None => resource.as_str().expect("a resource is a string or an intrinsic").to_owned(),
    }
}

/// The resources `action` is allowed on by `role`'s statements, and each statement's condition.
fn granted<'a>(role: &'a Value, action: &str) -> Vec<(String, &'a Value)> {
    statements(role)
        .into_iter()
        .filter(|s| actions(s).iter().any(|a| a == action))
        .flat_map(|s| one_or_many(&s["Resource"]).into_iter().map(move |r| (arn_text(r), &s["Condition"])))
        .collect()
}

/// The `s3:prefix` values a statement's `StringLike` condition allows.
fn prefix_condition(condition: &Value) -> Vec<String> {
    one_or_many(&condition["StringLike"]["s3:prefix"])
        .into_iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// (table ARN suffix, read ARN suffix) of a data map table, or (bucket, objects under the fixed
/// part of the prefix, that fixed part) of an S3 source.
enum MapResource {
    Table { table: String, read: String },
    Objects { bucket: String, objects: String, prefix: String },
}

fn data_map_resources() -> Vec<(String, MapResource)> {
    use privacy_shared::datamap::{DataMap, Location};
    DataMap::builtin()
        .unwrap()
        .sources()
        .iter()
        .filter(|source| !source.is_external())
        .map(|source| {
            let resource = match &source.location {
                Location::Table { table, index, .. } => MapResource::Table {
                    table: format!(":table/{table}"),
                    read: match index {
                        None => format!(":table/{table}"),
                        Some(index) => format!(":table/{table}/index/{index}"),
                    },
                },
                Location::Objects { bucket, prefix, .. } => {
                    let fixed = prefix.split('{').next().unwrap_or_default().to_owned();
                    MapResource::Objects {
                        bucket: format!("s3:::{bucket}"),
                        objects: format!("s3:::{bucket}/{fixed}*"),
                        prefix: fixed,
                    }
                }
                Location::Webhook { .. } | Location::Manual { .. } => unreachable!("filtered out"),
            };
            (source.id.clone(), resource)
        })
        .collect()
}

#[test]
fn the_erasure_role_may_delete_in_every_source_of_the_data_map() {
    let template = Template::load(&template::default_path()).unwrap();
    let function = &resource(&template, "ErasureFunction")["Properties"];
    assert_eq!(intrinsic(&function["Role"]), Some(("GetAtt", "ErasureRole.Arn")));
    let role = resource(&template, "ErasureRole");
    let on =
        |action: &str, suffix: &str| granted(role, action).into_iter().any(|(arn, _)| arn.ends_with(suffix));
    for (id, location) in data_map_resources() {
        match location {
            MapResource::Table { table, read } => {
                assert!(on("dynamodb:Query", &read), "ErasureRole cannot find the person in {id} ({read})");
                for action in ["dynamodb:DeleteItem", "dynamodb:UpdateItem"] {
                    assert!(
                        on(action, &table),
                        "ErasureRole lacks {action} on {table} (data map source {id})"
                    );
                }
            }
            MapResource::Objects { bucket, objects, prefix } => {
                for action in ["s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion"] {
                    assert!(
                        on(action, &objects),
                        "ErasureRole lacks {action} on {objects} (data map source {id})"
                    );
                }
                for action in ["s3:ListBucket", "s3:ListBucketVersions"] {
                    let lists: Vec<_> =
                        granted(role, action).into_iter().filter(|(arn, _)| arn.ends_with(&bucket)).collect();
                    assert!(
                        !lists.is_empty(),
                        "ErasureRole lacks {action} on {bucket} (data map source {id})"
                    );
                    for (_, condition) in lists {
                        assert_eq!(
                            prefix_condition(condition),
                            [format!("{prefix}*")],
                            "{action} on {bucket} is limited to the source's prefix"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_erasure_role_deletes_in_the_data_map_and_the_export_buckets_exports_prefix_only() {
    let template = Template::load(&template::default_path()).unwrap();
    let role = resource(&template, "ErasureRole");
    let map = data_map_resources();
    const EXPORTS: &str = "${ExportBucket.Arn}/exports/*";

    // The person's exports: every version, under exports/ only, listed under exports/ only.
    for action in ["s3:DeleteObject", "s3:DeleteObjectVersion"] {
        assert!(
            granted(role, action).iter().any(|(arn, _)| arn == EXPORTS),
            "ErasureRole lacks {action} on {EXPORTS}"
        );
    }
    for action in ["s3:ListBucket", "s3:ListBucketVersions"] {
        let lists: Vec<_> =
            granted(role, action).into_iter().filter(|(arn, _)| arn == "ExportBucket.Arn").collect();
        assert_eq!(lists.len(), 1, "ErasureRole lists the export bucket ({action})");
        assert_eq!(prefix_condition(lists[0].1), ["exports/*"], "{action} on the export bucket");
    }

    // Nothing else may be deleted, changed or listed: only the map's sources, the requests
    // table, the exports.
    let in_map_table = |arn: &str| {
        map.iter()
            .any(|(_, r)| matches!(r, MapResource::Table { table, .. } if arn.ends_with(table.as_str())))
    };
    for action in ["dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:PutItem"] {
        for (arn, _) in granted(role, action) {
            // Tombstones are only ever put (a conditional put per erasure), never changed or deleted.
            let tombstone = action == "dynamodb:PutItem" && arn == "TombstonesTable.Arn";
            assert!(
                arn == "RequestsTable.Arn" || in_map_table(&arn) || tombstone,
                "ErasureRole grants {action} on {arn}"
            );
        }
    }
    for action in ["s3:DeleteObject", "s3:DeleteObjectVersion"] {
        for (arn, _) in granted(role, action) {
            let in_map = map.iter().any(
                |(_, r)| matches!(r, MapResource::Objects { objects, .. } if arn.ends_with(objects.as_str())),
            );
            assert!(arn == EXPORTS || in_map, "ErasureRole grants {action} on {arn}");
        }
    }
    for action in ["s3:ListBucket", "s3:ListBucketVersions"] {
        for (arn, condition) in granted(role, action) {
            assert!(!prefix_condition(condition).is_empty(), "ErasureRole lists all of {arn}");
        }
    }
    for statement in statements(role) {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"));
        assert!(statement["NotAction"].is_null() && statement["NotResource"].is_null());
        for action in actions(statement) {
            assert!(!action.contains('*'), "ErasureRole grants {action}");
            assert!(!action.starts_with("ses:"), "the erasure sends no mail (dispatch sends the receipt)");
            assert!(!action.starts_with("s3:Put"), "the erasure writes no object");
        }
        if writes_traces(statement) {
            continue;
        }
        for resource in one_or_many(&statement["Resource"]) {
            let arn = arn_text(resource);
            // Only a log group's streams and object prefixes end in a wildcard.
            let allowed = arn == "${ErasureLogs.Arn}:*"
                || arn == EXPORTS
                || arn == SOURCE_SECRETS
                || map.iter().any(|(_, r)| matches!(r, MapResource::Objects { objects, .. } if arn.ends_with(objects.as_str())));
            assert!(!arn.contains('*') || allowed, "ErasureRole grants {arn}");
        }
    }
}

/// The webhook sources' signing secrets, by name (`secret:` in the data map).
const SOURCE_SECRETS: &str =
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:privacy-requests/sources/*";

#[test]
fn every_webhook_sources_secret_is_in_the_template_and_readable_by_the_workers_and_the_callback_only() {
    use privacy_shared::datamap::{DataMap, Location, WebhookAuth};
    let template = Template::load(&template::default_path()).unwrap();
    let secrets: Vec<String> = template
        .resources_of_type("AWS::SecretsManager::Secret")
        .into_iter()
        .filter_map(|id| resource(&template, &id)["Properties"]["Name"].as_str().map(str::to_owned))
        .collect();
    for source in DataMap::builtin().unwrap().sources() {
        if let Location::Webhook { auth: WebhookAuth::Hmac { secret }, .. } = &source.location {
            assert!(secrets.contains(secret), "{}: the template creates {secret}", source.id);
            assert!(secret.starts_with("privacy-requests/sources/"), "{secret} is under the roles' prefix");
        }
    }
    let mut readers = Vec::new();
    for role in template.resources_of_type("AWS::IAM::Role") {
        for statement in all_statements(&template, &role) {
            if actions(statement).iter().any(|a| a.starts_with("secretsmanager:")) {
                let resources = one_or_many(&statement["Resource"]);
                if resources.iter().any(|r| arn_text(r) == SOURCE_SECRETS) {
                    assert_eq!(
                        actions(statement),
                        vec!["secretsmanager:GetSecretValue".to_owned()],
                        "{role}"
                    );
                    readers.push(role.clone());
                }
            }
        }
    }
    readers.sort();
    assert_eq!(readers, ["ErasureRole", "ExportRole", "SourceCallbackRole"]);
}

#[test]
fn no_function_of_the_template_is_given_a_local_only_setting() {
    let template = Template::load(&template::default_path()).unwrap();
    for id in template.resources_of_type("AWS::Serverless::Function") {
        for (name, _) in given_environment(&template, &id) {
            assert!(
                !privacy_shared::config::LOCAL_ONLY.contains(&name.as_str()),
                "{id} is given {name}, which only the local stack and the tests may set"
            );
        }
    }
}

#[test]
fn the_erasure_queue_feeds_the_erasure_function_one_job_at_a_time() {
    let template = Template::load(&template::default_path()).unwrap();
    let sources = template.queue_event_sources().unwrap();
    let erasure: Vec<_> = sources.iter().filter(|s| s.queue == "ErasureQueue").collect();
    assert_eq!(erasure.len(), 1);
    assert_eq!((erasure[0].binary.as_str(), erasure[0].batch_size), ("erasure", Some(1)));
    assert!(erasure[0].reports_batch_item_failures);
    let queue = &resource(&template, "ErasureQueue")["Properties"];
    assert_eq!(queue["FifoQueue"].as_bool(), Some(true));
    assert_eq!(
        queue["ContentBasedDeduplication"].as_bool(),
        Some(false),
        "the sender sets the deduplication id"
    );
    let function = &resource(&template, "ErasureFunction")["Properties"];
    assert_eq!(function["Timeout"].as_u64(), Some(300));
    assert!(reserved_concurrency(function).is_some_and(|n| (1..=5).contains(&n)));
    assert_eq!(
        intrinsic(&function["Environment"]["Variables"]["EXPORT_BUCKET"]),
        Some(("Ref", "ExportBucket"))
    );
}

/// Every queue a function consumes follows the queue conventions (infra/README.md).
#[test]
fn every_worker_queue_is_encrypted_outlasts_its_consumer_and_has_an_alarmed_dead_letter_queue() {
    let template = Template::load(&template::default_path()).unwrap();
    let alarms: Vec<&Value> = template
        .resources_of_type("AWS::CloudWatch::Alarm")
        .iter()
        .map(|id| &resource(&template, id)["Properties"])
        .collect();
    let alarmed = |namespace: &str, dimension: &str, value: (&str, &str)| {
        alarms.iter().any(|a| {
            a["Namespace"].as_str() == Some(namespace)
                && one_or_many(&a["Dimensions"])
                    .iter()
                    .any(|d| d["Name"].as_str() == Some(dimension) && intrinsic(&d["Value"]) == Some(value))
                && one_or_many(&a["AlarmActions"]).iter().any(|t| intrinsic(t) == Some(("Ref", "AlarmTopic")))
        })
    };
    let global_timeout = template.raw()["Globals"]["Function"]["Timeout"].as_u64().unwrap();
    let sources = template.queue_event_sources().unwrap();
    assert!(sources.len() >= 2, "the export and erasure queues");
    for source in sources {
        let queue = &resource(&template, &source.queue)["Properties"];
        let function = &resource(&template, &source.function)["Properties"];
        assert_eq!(intrinsic(&queue["KmsMasterKeyId"]), Some(("Ref", "DataKey")), "{}", source.queue);
        let timeout = function["Timeout"].as_u64().unwrap_or(global_timeout);
        let visibility = queue["VisibilityTimeout"].as_u64().unwrap();
        assert!(visibility >= 6 * timeout, "{}: visibility {visibility} s < 6 x {timeout} s", source.queue);
        assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64(), Some(5), "{}", source.queue);
        let (_, dlq) = intrinsic(&queue["RedrivePolicy"]["deadLetterTargetArn"]).unwrap();
        let dlq = dlq.strip_suffix(".Arn").unwrap();
        let dead_letters = &resource(&template, dlq)["Properties"];
        assert_eq!(dead_letters["FifoQueue"], queue["FifoQueue"], "{dlq}");
        assert_eq!(intrinsic(&dead_letters["KmsMasterKeyId"]), Some(("Ref", "DataKey")), "{dlq}");
        assert_eq!(dead_letters["MessageRetentionPeriod"].as_u64(), Some(1_209_600), "{dlq}");
        let queue_name = format!("{dlq}.QueueName");
        assert!(alarmed("AWS/SQS", "QueueName", ("GetAtt", &queue_name)), "no alarm on {dlq}");
        assert!(
            alarmed("AWS/Lambda", "FunctionName", ("Ref", &source.function)),
            "no Errors alarm on {}",
            source.function
        );
    }
}

#[test]
fn dispatch_may_read_the_accounts_source_and_erase_only_the_companys_own_purpose_sources() {
    use privacy_shared::datamap::{DataMap, Location};
    let template = Template::load(&template::default_path()).unwrap();
    let role = resource(&template, "DispatchRole");
    let map = DataMap::builtin().unwrap();
    let Location::Table { table: accounts, .. } =
        &map.source("accounts").expect("the accounts source").location
    else {
        panic!("the accounts source is a table");
    };
    let accounts = format!(":table/{accounts}");
    for action in ["dynamodb:GetItem", "dynamodb:Query"] {
        assert!(
            granted(role, action).iter().any(|(arn, _)| arn.ends_with(&accounts)),
            "DispatchRole lacks {action} on {accounts}"
        );
    }
    // A referred deletion still erases the company's own-purpose sources (in AWS): each is read
    // and deleted in, by its own name.
    let own: Vec<String> = map.own_purpose_sources().iter().map(|s| s.id.clone()).collect();
    for (id, location) in data_map_resources().into_iter().filter(|(id, _)| own.contains(id)) {
        let MapResource::Table { table, read } = location else {
            panic!("own-purpose source {id} is not a table: grant its objects, then check them here")
        };
        assert_eq!(
            map.source(&id).unwrap().erasure,
            privacy_shared::datamap::ErasurePolicy::Delete,
            "own-purpose source {id} anonymises: grant dynamodb:UpdateItem, then allow it here"
        );
        for (action, arn) in [("dynamodb:Query", &read), ("dynamodb:DeleteItem", &table)] {
            assert!(
                granted(role, action).iter().any(|(granted, _)| granted.ends_with(arn.as_str())),
                "DispatchRole lacks {action} on {arn} (own-purpose source {id})"
            );
        }
    }
    // On the map's sources: reading the accounts and erasing the own-purpose ones, nothing more
    // (no other write, no other source).
    for statement in statements(role) {
        for resource in one_or_many(&statement["Resource"]) {
            let arn = arn_text(resource);
            assert!(!arn.contains(":table/*") && !arn.contains(":s3:::*"), "DispatchRole grants {arn}");
            for (id, location) in data_map_resources() {
                let touches = match &location {
                    MapResource::Table { table, read } => {
                        arn.ends_with(table.as_str())
                            || arn.ends_with(read.as_str())
                            || arn.contains(&format!("{table}/"))
                    }
                    MapResource::Objects { bucket, .. } => arn.contains(bucket.as_str()),
                };
                if !touches {
                    continue;
                }
                let allowed: &[&str] = if id == "accounts" {
                    &["dynamodb:GetItem", "dynamodb:Query"]
                } else if own.contains(&id) {
                    &["dynamodb:Query", "dynamodb:DeleteItem"]
                } else {
                    panic!("DispatchRole may touch {arn} (data map source {id}, the customer's)")
                };
                for action in actions(statement) {
                    assert!(
                        allowed.contains(&action.as_str()),
                        "DispatchRole grants {action} on {arn} (data map source {id})"
                    );
                }
            }
        }
    }
    // And it hands erasure jobs to the erasure queue.
    let env = &resource(&template, "DispatchFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(intrinsic(&env["ERASURE_QUEUE_URL"]), Some(("Ref", "ErasureQueue")));
    assert!(granted(role, "sqs:SendMessage").iter().any(|(arn, _)| arn == "ErasureQueue.Arn"));
}

#[test]
fn the_suppression_check_route_requires_aws_iam_and_its_policy_grants_only_it() {
    let template = Template::load(&template::default_path()).unwrap();
    let (method, path) = SUPPRESSION_CHECK;
    let events: Vec<(String, Value)> = http_api_events(&template)
        .into_iter()
        .filter(|(_, e)| {
            e["Path"].as_str() == Some(path)
                && e["Method"].as_str().map(str::to_uppercase).as_deref() == Some(method)
        })
        .collect();
    assert_eq!(events.len(), 1, "one {method} {path} route");
    let (function, event) = &events[0];
    assert_eq!(function, "AdminFunction");
    assert_eq!(intrinsic(&event["ApiId"]), Some(("Ref", "StaffApi")));
    let authorizer = &event["Auth"]["Authorizer"];
    assert!(
        authorizer.is_null() || authorizer.as_str() == Some("AWS_IAM"),
        "{method} {path} overrides AWS_IAM"
    );
    assert_eq!(
        resource(&template, "StaffApi")["Properties"]["Auth"]["DefaultAuthorizer"].as_str(),
        Some("AWS_IAM")
    );

    let policy = resource(&template, "SuppressionCheckPolicy");
    assert_eq!(policy["Type"].as_str(), Some("AWS::IAM::ManagedPolicy"));
    let statements = policy["Properties"]["PolicyDocument"]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(statement["Effect"].as_str(), Some("Allow"));
    assert!(statement["NotAction"].is_null() && statement["NotResource"].is_null());
    assert_eq!(actions(statement), ["execute-api:Invoke"]);
    let resources = one_or_many(&statement["Resource"]);
    assert_eq!(resources.len(), 1, "SuppressionCheckPolicy grants one route");
    let (tag, arn) = intrinsic(resources[0]).expect("an ARN built with !Sub");
    assert_eq!(tag, "Sub");
    assert!(arn.starts_with("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"), "{arn}");
    assert_eq!(
        arn.split_once(":${StaffApi}/*/").map(|(_, route)| route),
        Some("POST/staff/suppressions/check")
    );
    let output = &template.raw()["Outputs"]["SuppressionCheckPolicyArn"]["Value"];
    assert_eq!(intrinsic(output), Some(("Ref", "SuppressionCheckPolicy")));
}

#[test]
fn the_recipient_confirmation_route_goes_to_verify_and_is_throttled_like_verification() {
    let template = Template::load(&template::default_path()).unwrap();
    let events = http_api_events(&template);
    let route = |path: &str| {
        events
            .iter()
            .find(|(_, e)| e["Path"].as_str() == Some(path) && e["Method"].as_str() == Some("POST"))
            .unwrap_or_else(|| panic!("no POST {path}"))
    };
    let (function, event) = route("/requests/{id}/recipient");
    assert_eq!(function, "VerifyFunction");
    assert_eq!(intrinsic(&event["ApiId"]), Some(("Ref", "PublicApi")));
    let (verify, _) = route("/requests/{id}/verify");
    assert_eq!(verify, "VerifyFunction");
    let settings = &resource(&template, "PublicApi")["Properties"]["RouteSettings"];
    assert_eq!(
        settings["POST /requests/{id}/recipient"], settings["POST /requests/{id}/verify"],
        "the recipient confirmation is throttled like the verification"
    );
}

// ------------------------------------------------------------------ mail events

#[test]
fn ses_reports_every_mail_event_to_the_mail_events_function_through_an_encrypted_topic_only_it_may_publish_to()
 {
    let template = Template::load(&template::default_path()).unwrap();
    let destination = &resource(&template, "MailEventDestination");
    assert_eq!(destination["Type"].as_str(), Some("AWS::SES::ConfigurationSetEventDestination"));
    let properties = &destination["Properties"];
    assert_eq!(intrinsic(&properties["ConfigurationSetName"]), Some(("Ref", "MailConfigurationSet")));
    let events = &properties["EventDestination"];
    assert_eq!(events["Enabled"].as_bool(), Some(true));
    let mut types: Vec<&str> =
        one_or_many(&events["MatchingEventTypes"]).into_iter().filter_map(Value::as_str).collect();
    types.sort_unstable();
    assert_eq!(types, ["bounce", "complaint", "delivery", "deliveryDelay", "reject", "send"]);
    assert_eq!(intrinsic(&events["SnsDestination"]["TopicARN"]), Some(("Ref", "MailEventsTopic")));

    let topic = &resource(&template, "MailEventsTopic")["Properties"];
    assert_eq!(intrinsic(&topic["KmsMasterKeyId"]), Some(("Ref", "DataKey")));
    let policy = &resource(&template, "MailEventsTopicPolicy")["Properties"];
    assert_eq!(
        one_or_many(&policy["Topics"]).into_iter().map(intrinsic).collect::<Vec<_>>(),
        [Some(("Ref", "MailEventsTopic"))]
    );
    for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
        assert_eq!(statement["Principal"]["Service"].as_str(), Some("ses.amazonaws.com"));
        assert_eq!(actions(statement), ["sns:Publish"]);
        assert_eq!(
            intrinsic(&statement["Condition"]["StringEquals"]["aws:SourceAccount"]),
            Some(("Ref", "AWS::AccountId")),
            "only this account's SES"
        );
    }
    // SES (to publish) and SNS (to deliver) may use the key the topic is encrypted with.
    let key_policy = &resource(&template, "DataKey")["Properties"]["KeyPolicy"]["Statement"];
    let for_topic = key_policy
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            one_or_many(&s["Principal"]["Service"]).iter().any(|p| p.as_str() == Some("ses.amazonaws.com"))
        })
        .expect("a key policy statement for SES");
    let services: Vec<&str> =
        one_or_many(&for_topic["Principal"]["Service"]).into_iter().filter_map(Value::as_str).collect();
    assert!(services.contains(&"sns.amazonaws.com"), "{services:?}");
    assert!(!actions(for_topic).iter().any(|a| a == "kms:*"));
    assert!(!for_topic["Condition"]["StringEquals"]["aws:SourceAccount"].is_null());

    // The function: the topic's one subscriber, retried then dead-lettered (asynchronous), alarmed.
    let function = resource(&template, "MailEventsFunction");
    assert_eq!(function["Metadata"]["BuildProperties"]["Binary"].as_str(), Some("mail-events"));
    let properties = &function["Properties"];
    let subscriptions: Vec<&Value> = properties["Events"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(_, e)| e)
        .filter(|e| e["Type"].as_str() == Some("SNS"))
        .collect();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(intrinsic(&subscriptions[0]["Properties"]["Topic"]), Some(("Ref", "MailEventsTopic")));
    assert!(properties["EventInvokeConfig"]["MaximumRetryAttempts"].as_u64().is_some());
    assert!(properties["EventInvokeConfig"]["MaximumEventAgeInSeconds"].as_u64().is_some());
    let (_, dlq) = intrinsic(&properties["DeadLetterQueue"]["TargetArn"]).expect("a dead-letter queue");
    let dlq = dlq.strip_suffix(".Arn").unwrap();
    assert_eq!(
        intrinsic(&resource(&template, dlq)["Properties"]["KmsMasterKeyId"]),
        Some(("Ref", "DataKey"))
    );
    let alarms: Vec<&Value> = template
        .resources_of_type("AWS::CloudWatch::Alarm")
        .iter()
        .map(|id| &resource(&template, id)["Properties"])
        .collect();
    let watches = |metric: &str, value: (&str, &str)| {
        alarms.iter().any(|a| {
            a["MetricName"].as_str() == Some(metric)
                && one_or_many(&a["Dimensions"]).iter().any(|d| intrinsic(&d["Value"]) == Some(value))
        })
    };
    assert!(watches("Errors", ("Ref", "MailEventsFunction")), "no Errors alarm on MailEventsFunction");
    let queue_name = format!("{dlq}.QueueName");
    assert!(watches("ApproximateNumberOfMessagesVisible", ("GetAtt", &queue_name)), "no alarm on {dlq}");

    // Exactly the table actions it calls, on the table only; mail only from the stack's sender.
    let role = resource(&template, "MailEventsRole");
    assert_eq!(intrinsic(&properties["Role"]), Some(("GetAtt", "MailEventsRole.Arn")));
    let mut table_actions: Vec<String> =
        statements(role).into_iter().flat_map(actions).filter(|a| a.starts_with("dynamodb:")).collect();
    table_actions.sort();
    assert_eq!(
        table_actions,
        ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    );
    for action in &table_actions {
        assert!(granted(role, action).iter().all(|(arn, _)| arn == "RequestsTable.Arn"), "{action}");
    }
    // (`!Sub [text, variables]` for the domain identity: its text is what matters.)
    let sends = statements(role).into_iter().filter(|s| actions(s).iter().any(|a| a == "ses:SendEmail"));
    for resource in sends.flat_map(|s| one_or_many(&s["Resource"])) {
        let arn = match resource {
            Value::Tagged(t) => match &t.value {
                Value::Sequence(parts) => parts[0].as_str(),
                text => text.as_str(),
            },
            text => text.as_str(),
        }
        .unwrap_or_default();
        let identity = arn.contains(":identity/");
        assert!(identity || arn.ends_with(":configuration-set/${MailConfigurationSet}"), "{arn}");
    }
}

#[test]
fn the_ses_reputation_alarms_wake_staff_before_ses_pauses_sending() {
    let template = Template::load(&template::default_path()).unwrap();
    for (id, metric, threshold) in [
        ("BounceRateAlarm", "Reputation.BounceRate", 0.05),
        ("ComplaintRateAlarm", "Reputation.ComplaintRate", 0.001),
    ] {
        let alarm = &resource(&template, id)["Properties"];
        assert_eq!(alarm["Namespace"].as_str(), Some("AWS/SES"), "{id}");
        assert_eq!(alarm["MetricName"].as_str(), Some(metric), "{id}");
        assert_eq!(alarm["Threshold"].as_f64(), Some(threshold), "{id}");
        assert_eq!(alarm["ComparisonOperator"].as_str(), Some("GreaterThanThreshold"), "{id}");
        assert_eq!(intrinsic(&alarm["AlarmActions"][0]), Some(("Ref", "AlarmTopic")), "{id}");
    }
}

// ------------------------------------------------------------------ the first deploy (issue 12)

/// A resource's properties, or (for a function) what it is given, as one YAML text: what a
/// reference search reads.
fn yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap()
}

/// `(condition, then, else)` of an `!If`.
fn if_branches(value: &Value) -> Option<(&str, &Value, &Value)> {
    match value {
        Value::Tagged(t) if t.tag == "If" => match t.value.as_sequence()?.as_slice() {
            [condition, then, otherwise] => Some((condition.as_str()?, then, otherwise)),
            _ => None,
        },
        _ => None,
    }
}

fn is_no_value(value: &Value) -> bool {
    intrinsic(value) == Some(("Ref", "AWS::NoValue"))
}

fn parse_yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap()
}

/// The reserved concurrency a function gets with `ReservedConcurrency: "on"`: the `n` of
/// `!If [ReserveConcurrency, n, !Ref AWS::NoValue]` (none without it).
fn reserved_concurrency(function: &Value) -> Option<u64> {
    match if_branches(&function["ReservedConcurrentExecutions"]) {
        Some(("ReserveConcurrency", n, otherwise)) if is_no_value(otherwise) => n.as_u64(),
        _ => None,
    }
}

/// Whether `value` names resource `id` anywhere (`!Ref id`, `!GetAtt id.…`, `${id}` or `${id.…}`
/// in a `!Sub`).
fn refers_to(value: &Value, id: &str) -> bool {
    match value {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let named = match (tag.trim_start_matches('!'), t.value.as_str()) {
                ("Ref", Some(target)) => target == id,
                ("GetAtt", Some(target)) => target.split('.').next() == Some(id),
                ("Sub", Some(text)) => {
                    text.contains(&format!("${{{id}}}")) || text.contains(&format!("${{{id}."))
                }
                _ => false,
            };
            named || refers_to(&t.value, id)
        }
        Value::Mapping(map) => map.iter().any(|(_, v)| refers_to(v, id)),
        Value::Sequence(items) => items.iter().any(|v| refers_to(v, id)),
        _ => false,
    }
}

/// The resource an ARN of a policy names: `X` of `!GetAtt X.Arn`, `!Ref X`, or `${X.Arn}/…`.
fn named_resource(arn: &Value) -> Option<String> {
    match intrinsic(arn)? {
        ("GetAtt", target) | ("Ref", target) => Some(target.split('.').next()?.to_owned()),
        (_, text) => {
            let inner = text.strip_prefix("${")?.split('}').next()?;
            let id = inner.split('.').next()?;
            (!id.starts_with("AWS::")).then(|| id.to_owned())
        }
    }
}

/// Every resource of the template: (logical id, resource).
fn all_resources(template: &Template) -> Vec<(String, &Value)> {
    template.raw()["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(id, r)| (id.as_str().unwrap().to_owned(), r))
        .collect()
}

/// The roles that run the functions: (function logical id, binary, role logical id).
fn function_roles(template: &Template) -> Vec<(String, String, String)> {
    template
        .resources_of_type("AWS::Serverless::Function")
        .into_iter()
        .map(|id| {
            let (_, role) =
                intrinsic(&resource(template, &id)["Properties"]["Role"]).expect("a role of its own");
            let role = role.strip_suffix(".Arn").unwrap().to_owned();
            (id.clone(), binary(template, &id).to_owned(), role)
        })
        .collect()
}

// ---------------------------------------------------------------- samconfig.toml

/// `infra/samconfig.toml` as (table, key) -> value, read line by line (the file holds only tables
/// and `key = value` pairs; strings lose their quotes).
fn samconfig() -> std::collections::BTreeMap<(String, String), String> {
    let path = template::default_path().with_file_name("samconfig.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut table = String::new();
    let mut pairs = std::collections::BTreeMap::new();
    for line in text.lines() {
        // A `#` outside a string starts a comment.
        let mut quoted = false;
        let end = line
            .char_indices()
            .find(|&(_, c)| {
                quoted ^= c == '"';
                c == '#' && !quoted
            })
            .map_or(line.len(), |(i, _)| i);
        let line = line[..end].trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.trim().to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            pairs.insert((table.clone(), key.trim().to_owned()), value.to_owned());
        }
    }
    pairs
}

/// The config environments of samconfig.toml (`default`, `x86_64`, …).
fn config_envs(config: &std::collections::BTreeMap<(String, String), String>) -> Vec<String> {
    let mut envs: Vec<String> = config
        .keys()
        .filter_map(|(table, _)| table.split('.').next().filter(|e| !e.is_empty()).map(str::to_owned))
        .collect();
    envs.sort();
    envs.dedup();
    envs
}

#[test]
fn sam_deploy_takes_the_built_template_and_only_build_and_validate_name_the_source_template() {
    let config = samconfig();
    for ((table, key), value) in &config {
        if key == "template_file" {
            let command = table.split('.').nth(1).unwrap_or_default();
            assert!(
                ["build", "validate"].contains(&command),
                "[{table}] sets template_file = {value:?}: sam deploy would then package the source \
                 template, whose CodeUri ../ is the whole repository, instead of .aws-sam/build"
            );
        }
    }
    for env in config_envs(&config) {
        for command in ["build", "validate"] {
            let table = format!("{env}.{command}.parameters");
            assert_eq!(
                config.get(&(table.clone(), "template_file".to_owned())).map(String::as_str),
                Some("template.yaml"),
                "[{table}]"
            );
        }
    }
}

#[test]
fn the_x86_64_config_env_builds_and_deploys_x86_64_with_the_default_envs_settings() {
    let config = samconfig();
    let setting = |env: &str, command: &str, key: &str| {
        config
            .get(&(format!("{env}.{command}.parameters"), key.to_owned()))
            .or_else(|| config.get(&(format!("{env}.global.parameters"), key.to_owned())))
            .cloned()
    };
    // Build and deploy agree: an arm64 function cannot run an x86_64 bootstrap.
    for command in ["build", "deploy"] {
        let overrides = setting("x86_64", command, "parameter_overrides").unwrap_or_default();
        assert!(
            overrides.split_whitespace().any(|o| o == "Architecture=x86_64"),
            "sam {command} --config-env x86_64 does not set Architecture=x86_64 ({overrides:?})"
        );
        let default = setting("default", command, "parameter_overrides").unwrap_or_default();
        assert!(!default.contains("Architecture="), "the default env keeps the template's arm64");
    }
    // Everything else as the default env has it (a config env does not inherit from another).
    for ((table, key), value) in &config {
        let Some(rest) = table.strip_prefix("default.") else { continue };
        assert_eq!(
            config.get(&(format!("x86_64.{rest}"), key.clone())),
            Some(value),
            "[x86_64.{rest}] {key} differs from [default.{rest}]"
        );
    }
}

#[test]
fn every_function_and_the_deployed_stack_carry_the_cost_allocation_tag() {
    let template = Template::load(&template::default_path()).unwrap();
    let tags = &template.raw()["Globals"]["Function"]["Tags"];
    assert_eq!(tags["project"].as_str(), Some("privacy-requests"), "Globals.Function.Tags");
    for id in template.resources_of_type("AWS::Serverless::Function") {
        let own = &resource(&template, &id)["Properties"]["Tags"];
        assert!(own.is_null() || own["project"].as_str() == Some("privacy-requests"), "{id}");
    }
    let config = samconfig();
    for env in config_envs(&config) {
        let deploy = config.get(&(format!("{env}.deploy.parameters"), "tags".to_owned())).cloned();
        assert!(
            deploy.unwrap_or_default().split_whitespace().any(|t| t == "project=privacy-requests"),
            "sam deploy --config-env {env} does not tag the stack"
        );
    }
}

// ---------------------------------------------------------------- KMS

/// The KMS use (service, key actions) an action on a resource encrypted with a customer-managed
/// key asks of the caller's role; none for actions that read or write no encrypted data.
fn key_use(action: &str) -> Option<(&'static str, &'static [&'static str])> {
    const READ: &[&str] = &["kms:Decrypt", "kms:DescribeKey"];
    const WRITE: &[&str] = &["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"];
    match action {
        "dynamodb:GetItem"
        | "dynamodb:BatchGetItem"
        | "dynamodb:Query"
        | "dynamodb:Scan"
        | "dynamodb:ConditionCheckItem"
        | "dynamodb:GetRecords" => Some(("dynamodb", READ)),
        "dynamodb:PutItem" | "dynamodb:UpdateItem" | "dynamodb:DeleteItem" | "dynamodb:BatchWriteItem" => {
            Some(("dynamodb", WRITE))
        }
        "sqs:SendMessage" => Some(("sqs", &["kms:Decrypt", "kms:GenerateDataKey"])),
        "sqs:ReceiveMessage" => Some(("sqs", &["kms:Decrypt"])),
        // SSE-KMS: a (multipart) upload generates and decrypts data keys, a read decrypts.
        "s3:PutObject" => Some(("s3", &["kms:Decrypt", "kms:GenerateDataKey"])),
        "s3:GetObject" => Some(("s3", &["kms:Decrypt"])),
        "sns:Publish" => Some(("sns", &["kms:Decrypt", "kms:GenerateDataKey"])),
        "secretsmanager:GetSecretValue" => Some(("secretsmanager", &["kms:Decrypt"])),
        _ => None,
    }
}

/// The services a statement's `kms:ViaService` condition allows (`dynamodb` for
/// `!Sub dynamodb.${AWS::Region}.amazonaws.com`); only that exact regional form counts.
fn via_services(statement: &Value) -> Vec<String> {
    one_or_many(&statement["Condition"]["StringEquals"]["kms:ViaService"])
        .into_iter()
        .filter_map(|v| match intrinsic(v) {
            Some(("Sub", text)) => text.strip_suffix(".${AWS::Region}.amazonaws.com").map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// The resources encrypted with `key` (their properties name it), log groups aside: CloudWatch
/// Logs uses the key under the key policy, never with the writer's role.
fn encrypted_with(template: &Template, key: &str) -> std::collections::BTreeSet<String> {
    all_resources(template)
        .into_iter()
        .filter(|(_, r)| !matches!(r["Type"].as_str(), Some("AWS::Logs::LogGroup" | "AWS::KMS::Alias")))
        .filter(|(_, r)| refers_to(&r["Properties"], key))
        .map(|(id, _)| id)
        .collect()
}

/// A role's statements and those of the policies attached to it (`AWS::IAM::Policy` naming it).
fn all_statements<'a>(template: &'a Template, role: &str) -> Vec<&'a Value> {
    let mut all = statements(resource(template, role));
    for id in template.resources_of_type("AWS::IAM::Policy") {
        let policy = resource(template, &id);
        if one_or_many(&policy["Properties"]["Roles"]).iter().any(|r| intrinsic(r) == Some(("Ref", role))) {
            all.extend(policy["Properties"]["PolicyDocument"]["Statement"].as_sequence().unwrap());
        }
    }
    all
}

#[test]
fn every_role_may_use_the_stack_key_exactly_as_the_encrypted_resources_it_touches_need_and_only_through_their_service()
 {
    use std::collections::{BTreeMap, BTreeSet};
    let template = Template::load(&template::default_path()).unwrap();
    let encrypted = encrypted_with(&template, "DataKey");
    for id in ["RequestsTable", "ExportBucket", "ExportQueue", "ErasureQueue", "AlarmTopic"] {
        assert!(encrypted.contains(id), "{id} is encrypted with DataKey");
    }
    let mut problems = Vec::new();
    for role in template.resources_of_type("AWS::IAM::Role") {
        let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for statement in all_statements(&template, &role) {
            let granted = actions(statement);
            let resources = one_or_many(&statement["Resource"]);
            if granted.iter().any(|a| a.starts_with("kms:")) {
                if !resources.iter().any(|r| named_resource(r).as_deref() == Some("DataKey")) {
                    continue;
                }
                let services = via_services(statement);
                if services.is_empty() {
                    problems.push(format!("{role} may use DataKey through any service: {granted:?}"));
                }
                for service in services {
                    allowed.entry(service).or_default().extend(granted.iter().cloned());
                }
                continue;
            }
            // A secret is granted by its name (`secret:privacy-requests/sources/*`), not by its id.
            let names_encrypted_secret = |r: &Value| {
                let arn = arn_text(r);
                encrypted.iter().any(|id| {
                    let name = resource(&template, id)["Properties"]["Name"].as_str().unwrap_or_default();
                    let pattern = arn.split(":secret:").nth(1).unwrap_or_default();
                    !name.is_empty() && pattern.strip_suffix('*').is_some_and(|p| name.starts_with(p))
                })
            };
            let touches = resources.iter().any(|r| {
                named_resource(r).is_some_and(|id| encrypted.contains(&id)) || names_encrypted_secret(r)
            });
            if touches {
                for (service, key_actions) in granted.iter().filter_map(|a| key_use(a)) {
                    needed
                        .entry(service.to_owned())
                        .or_default()
                        .extend(key_actions.iter().map(|a| (*a).to_owned()));
                }
            }
        }
        if needed != allowed {
            problems.push(format!("{role}: needs {needed:?}\n    but may {allowed:?}"));
        }
    }
    assert!(problems.is_empty(), "key permissions (per kms:ViaService):\n{}", problems.join("\n"));
}

#[test]
fn the_data_map_sources_keys_are_granted_only_when_given_and_only_to_decrypt_through_their_services() {
    let template = Template::load(&template::default_path()).unwrap();
    let parameter = &template.raw()["Parameters"]["SourceKeyArns"];
    assert_eq!(parameter["Type"].as_str(), Some("CommaDelimitedList"));
    assert_eq!(parameter["Default"].as_str(), Some(""), "optional: none by default");
    let condition = &template.raw()["Conditions"]["HasSourceKeys"];
    assert!(refers_to(condition, "SourceKeyArns"), "HasSourceKeys is about SourceKeyArns");
    // The roles that read the map's sources: tables and buckets (export, erasure), and the
    // account table (dispatch's triage).
    for (role, services) in [
        ("ExportRole", vec!["dynamodb", "s3"]),
        ("ErasureRole", vec!["dynamodb", "s3"]),
        ("DispatchRole", vec!["dynamodb"]),
    ] {
        assert!(
            !statements(resource(&template, role)).iter().any(|s| refers_to(&s["Resource"], "SourceKeyArns")),
            "{role} names the source keys unconditionally"
        );
        let mut grants = Vec::new();
        for id in template.resources_of_type("AWS::IAM::Policy") {
            let policy = resource(&template, &id);
            if !one_or_many(&policy["Properties"]["Roles"])
                .iter()
                .any(|r| intrinsic(r) == Some(("Ref", role)))
            {
                continue;
            }
            for statement in policy["Properties"]["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                if refers_to(&statement["Resource"], "SourceKeyArns") {
                    assert_eq!(
                        policy["Condition"].as_str(),
                        Some("HasSourceKeys"),
                        "{id}: nothing when none given"
                    );
                    grants.push(statement);
                }
            }
        }
        assert_eq!(grants.len(), 1, "{role}: one grant of the source keys");
        assert_eq!(actions(grants[0]), ["kms:Decrypt"], "{role}");
        assert_eq!(via_services(grants[0]), services, "{role}");
    }
}

// ---------------------------------------------------------------- each role against its calls

/// What the store's methods (shared/src/store) do to the requests table, as IAM authorises it
/// (TransactWriteItems per item action: Put -> PutItem, Update -> UpdateItem, Delete ->
/// DeleteItem, ConditionCheck -> ConditionCheckItem). `@index` marks the due-date index's ARN.
/// A call is found in a function's source by its text: `.name(` for a method, `name(` for a
/// helper of `store`, `store::ledger` or `mail::guard` that calls store methods itself (a new
/// such helper belongs here too).
const STORE_CALLS: &[(&str, &[&str])] = &[
    // The way a request comes in (shared/src/intake, for intake and the staff API): create or
    // create_opt_out, open_request, get, issue_token, suppressions, the mail budgets, send_guarded.
    ("intake::accept(", &["PutItem", "GetItem", "UpdateItem", "Query", "ConditionCheckItem"]),
    // Requests: create puts four items; on a conflict it reads the open marker.
    (".create(", &["PutItem", "GetItem"]),
    (".create_opt_out(", &["PutItem", "UpdateItem"]),
    (".get(", &["GetItem"]),
    (".open_request(", &["GetItem"]),
    // The request (update), its audit event (put), a consumed secret or a closed request's
    // secrets and marker (delete), the verified history (put).
    (".transition(", &["UpdateItem", "PutItem", "DeleteItem"]),
    ("transition_or_reload(", &["UpdateItem", "PutItem", "DeleteItem", "GetItem"]),
    // Completing an export checks the person's erasure mark in the same transaction.
    ("Completion::Exported", &["ConditionCheckItem"]),
    (".audit_trail(", &["Query"]),
    (".record_event(", &["PutItem"]),
    (".record_event_because(", &["PutItem"]),
    (".mark_acknowledged(", &["UpdateItem"]),
    // A portability request's wait for its recipient's confirmation: put beside the request,
    // found through the due-date index by the sweep, deleted once confirmed or lapsed.
    (".await_recipient(", &["PutItem"]),
    (".lapsed_recipient_waits(", &["Query@index"]),
    (".end_recipient_wait(", &["DeleteItem"]),
    (".scrub_request(", &["UpdateItem", "DeleteItem"]),
    // Secrets: a new link is written together with a check of the request's status.
    (".secret(", &["GetItem"]),
    (".issue_token(", &["GetItem", "PutItem", "ConditionCheckItem"]),
    (".count_wrong_attempt(", &["GetItem", "PutItem"]),
    (".put_download_token(", &["PutItem"]),
    (".download_tokens(", &["GetItem"]),
    // The effect ledger: claim (put, then get on a conflict), finish (update), release (delete).
    (".claim_effect(", &["PutItem", "GetItem"]),
    (".finish_effect(", &["UpdateItem"]),
    (".release_effect(", &["DeleteItem"]),
    ("once(", &["PutItem", "GetItem", "UpdateItem", "DeleteItem"]),
    ("claim_all(", &["PutItem", "GetItem", "UpdateItem", "DeleteItem"]),
    ("once_or_take_over(", &["PutItem", "GetItem", "UpdateItem", "DeleteItem"]),
    (".open_requests(", &["Query@index"]),
    // People.
    (".suppressions(", &["Query"]),
    ("is_suppressed(", &["Query"]),
    (".history(", &["Query"]),
    (".erasure_mark(", &["GetItem"]),
    (".mark_erasure_started(", &["UpdateItem"]),
    (".charge_budget(", &["UpdateItem"]),
    (".refund_budget(", &["UpdateItem"]),
    (".mail_suppression(", &["GetItem"]),
    (".suppress_mail(", &["UpdateItem"]),
    // shared::mail::guard: the recipient's suppression, and a withheld mail's audit event.
    ("guard(", &["GetItem"]),
    ("record_withheld(", &["PutItem"]),
    ("send_guarded(", &["GetItem", "PutItem"]),
    // Erasure progress.
    (".erasure_progress(", &["GetItem"]),
    (".save_erasure_progress(", &["PutItem"]),
    // Source tasks: opening reads the earlier task on a conflict; a change is a conditional put,
    // read again when another writer won; the sweep's list is the index, each task then read.
    (".open_task(", &["PutItem", "GetItem"]),
    (".task(", &["GetItem"]),
    (".tasks(", &["Query"]),
    (".update_task(", &["PutItem"]),
    ("change_task(", &["PutItem", "GetItem"]),
    (".waiting_tasks(", &["Query@index", "GetItem"]),
    (".retire_task(", &["UpdateItem"]),
    // Records of requests: a put conditional on the version; a year is one partition, queried.
    (".put_record(", &["PutItem"]),
    (".records_of_year(", &["Query"]),
];

/// A function crate's code, its test modules left out.
fn function_source(binary: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let dir = [binary.to_owned(), binary.replace('_', "-"), binary.replace('-', "_")]
        .into_iter()
        .map(|name| root.join(name).join("src"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no functions/{binary}/src"));
    let mut code = String::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        code.push_str(text.split("#[cfg(test)]").next().unwrap_or_default());
        code.push('\n');
    }
    code
}

/// Whether `code` makes the call: `.name(` anywhere, `name(` not as the end of a longer name.
fn calls(code: &str, call: &str) -> bool {
    if call.starts_with('.') || call.contains("::") {
        return code.contains(call);
    }
    code.match_indices(call)
        .any(|(at, _)| code[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_')))
}

#[test]
fn every_role_allows_exactly_the_requests_table_calls_its_function_makes() {
    use std::collections::BTreeSet;
    let template = Template::load(&template::default_path()).unwrap();
    let mut problems = Vec::new();
    for (function, binary, role) in function_roles(&template) {
        let code = function_source(&binary);
        let needed: BTreeSet<String> = STORE_CALLS
            .iter()
            .filter(|(call, _)| calls(&code, call))
            .flat_map(|(_, actions)| actions.iter().map(|a| (*a).to_owned()))
            .collect();
        let mut allowed = BTreeSet::new();
        for statement in statements(resource(&template, &role)) {
            for arn in one_or_many(&statement["Resource"]).into_iter().map(arn_text) {
                let on = match arn.as_str() {
                    "RequestsTable.Arn" => "",
                    "${RequestsTable.Arn}/index/by_due_date" => "@index",
                    _ => continue,
                };
                for action in actions(statement) {
                    let action = action.strip_prefix("dynamodb:").unwrap_or(&action).to_owned();
                    allowed.insert(format!("{action}{on}"));
                }
            }
        }
        if needed != allowed {
            let missing: Vec<_> = needed.difference(&allowed).collect();
            let extra: Vec<_> = allowed.difference(&needed).collect();
            problems.push(format!("{function} ({role}): lacks {missing:?}, allows unused {extra:?}"));
        }
    }
    assert!(problems.is_empty(), "requests table permissions against the calls:\n{}", problems.join("\n"));
}

#[test]
fn every_method_of_the_store_says_which_table_actions_it_makes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src/store/mod.rs");
    let text = std::fs::read_to_string(path).unwrap();
    let mut in_trait = false;
    let mut methods = Vec::new();
    for line in text.lines() {
        if line.starts_with("pub trait ") {
            in_trait = true;
        } else if line == "}" {
            in_trait = false;
        } else if let Some(rest) = line.strip_prefix("    fn ").filter(|_| in_trait) {
            methods.push(rest.split(['(', '<']).next().unwrap().to_owned());
        }
    }
    assert!(methods.len() >= 20, "the store traits' methods: {methods:?}");
    let unknown: Vec<&String> =
        methods.iter().filter(|m| !STORE_CALLS.iter().any(|(call, _)| *call == format!(".{m}("))).collect();
    assert!(unknown.is_empty(), "STORE_CALLS does not say what these do to the table: {unknown:?}");
}

#[test]
fn an_export_may_delete_every_version_of_its_own_upload_and_of_its_staged_answers_only() {
    let template = Template::load(&template::default_path()).unwrap();
    assert!(function_source("export").contains("delete_all_versions("), "what these permissions are for");
    let role = resource(&template, "ExportRole");
    let owned = ["${ExportBucket.Arn}/exports/*", "${ExportBucket.Arn}/staging/*"];
    for action in ["s3:DeleteObject", "s3:DeleteObjectVersion"] {
        let on: Vec<String> = granted(role, action).into_iter().map(|(arn, _)| arn).collect();
        assert_eq!(on, owned, "ExportRole {action}");
    }
    let lists = granted(role, "s3:ListBucketVersions");
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].0, "ExportBucket.Arn");
    assert_eq!(prefix_condition(lists[0].1), ["exports/*", "staging/*"], "listing only under its prefixes");
}

// ---------------------------------------------------------------- concurrency

#[test]
fn reserved_concurrency_is_a_parameter_off_by_default_and_on_gives_each_function_its_value() {
    let template = Template::load(&template::default_path()).unwrap();
    let parameter = &template.raw()["Parameters"]["ReservedConcurrency"];
    assert_eq!(parameter["Default"].as_str(), Some("off"), "a new account's quota of 10 reserves nothing");
    let allowed: Vec<&str> =
        one_or_many(&parameter["AllowedValues"]).into_iter().filter_map(Value::as_str).collect();
    assert_eq!(allowed, ["on", "off"]);
    assert_eq!(
        template.raw()["Conditions"]["ReserveConcurrency"],
        parse_yaml("!Equals [!Ref ReservedConcurrency, \"on\"]")
    );
    let mut total = 0;
    for id in template.resources_of_type("AWS::Serverless::Function") {
        let function = &resource(&template, &id)["Properties"];
        let n = reserved_concurrency(function).unwrap_or_else(|| {
            panic!("{id}: ReservedConcurrentExecutions is not !If [ReserveConcurrency, n, !Ref AWS::NoValue]")
        });
        assert!(n >= 1, "{id}");
        total += n;
    }
    assert!(total <= 100, "with it on, the account needs {total} + 10 unreserved");
}

#[test]
fn no_queue_event_source_polls_for_more_jobs_at_once_than_its_function_may_run() {
    let template = Template::load(&template::default_path()).unwrap();
    let mut checked = 0;
    for id in template.resources_of_type("AWS::Serverless::Function") {
        let function = &resource(&template, &id)["Properties"];
        for (name, event) in function["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() != Some("SQS") {
                continue;
            }
            let maximum = event["Properties"]["ScalingConfig"]["MaximumConcurrency"]
                .as_u64()
                .unwrap_or_else(|| panic!("{id} {name:?}: no ScalingConfig.MaximumConcurrency"));
            assert!(maximum >= 2, "{id}: SQS allows 2 at least");
            if let Some(reserved) = reserved_concurrency(function) {
                assert!(maximum <= reserved, "{id}: {maximum} pollers for {reserved} reserved");
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "the export and erasure queues");
}

// ---------------------------------------------------------------- retention

#[test]
fn every_retained_resource_encrypted_with_a_key_of_the_stack_keeps_that_key() {
    let template = Template::load(&template::default_path()).unwrap();
    let retained: Vec<(String, &Value)> = all_resources(&template)
        .into_iter()
        .filter(|(_, r)| r["DeletionPolicy"].as_str() == Some("Retain"))
        .collect();
    let mut keys_checked = 0;
    for key in template.resources_of_type("AWS::KMS::Key") {
        let users: Vec<&String> =
            retained.iter().filter(|(_, r)| refers_to(&r["Properties"], &key)).map(|(id, _)| id).collect();
        if users.is_empty() {
            continue;
        }
        let key_resource = resource(&template, &key);
        for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
            assert_eq!(
                key_resource[policy].as_str(),
                Some("Retain"),
                "{key} has no {policy}: Retain, yet {users:?} are kept and unreadable without it"
            );
        }
        keys_checked += 1;
    }
    assert!(keys_checked >= 1, "the table and export bucket are retained and encrypted with DataKey");
}

// ---------------------------------------------------------------- the public address

#[test]
fn the_public_base_url_is_the_custom_domain_or_a_required_value_never_a_placeholder() {
    let template = Template::load(&template::default_path()).unwrap();
    let parameters = &template.raw()["Parameters"];
    for name in ["PublicBaseUrl", "CustomDomainName", "CertificateArn"] {
        assert_eq!(parameters[name]["Default"].as_str(), Some(""), "{name}: no placeholder");
    }
    // One of the two is required, checked by CloudFormation before anything is created.
    let rules = yaml(&template.raw()["Rules"]);
    assert!(
        template.raw()["Rules"].as_mapping().into_iter().flatten().any(|(_, rule)| {
            let text = yaml(rule);
            text.contains("PublicBaseUrl") && text.contains("CustomDomainName") && text.contains("Assert")
        }),
        "no rule requires PublicBaseUrl or CustomDomainName: {rules}"
    );
    let expected =
        parse_yaml("!If [HasPublicBaseUrl, !Ref PublicBaseUrl, !Sub \"https://${CustomDomainName}\"]");
    let mut given = 0;
    for id in template.resources_of_type("AWS::Serverless::Function") {
        let value = &resource(&template, &id)["Properties"]["Environment"]["Variables"]["PUBLIC_BASE_URL"];
        if !value.is_null() {
            assert_eq!(value, &expected, "{id}: PUBLIC_BASE_URL");
            given += 1;
        }
    }
    assert!(given >= 4);
    // The custom domain, when given, in front of the public API.
    let domains = template.resources_of_type("AWS::ApiGatewayV2::DomainName");
    assert_eq!(domains.len(), 1);
    let domain = resource(&template, &domains[0]);
    assert_eq!(domain["Condition"].as_str(), Some("HasCustomDomain"));
    assert!(refers_to(&template.raw()["Conditions"]["HasCustomDomain"], "CustomDomainName"));
    assert_eq!(intrinsic(&domain["Properties"]["DomainName"]), Some(("Ref", "CustomDomainName")));
    let configuration = &domain["Properties"]["DomainNameConfigurations"][0];
    assert_eq!(intrinsic(&configuration["CertificateArn"]), Some(("Ref", "CertificateArn")));
    let mappings = template.resources_of_type("AWS::ApiGatewayV2::ApiMapping");
    assert_eq!(mappings.len(), 1);
    let mapping = resource(&template, &mappings[0]);
    assert_eq!(mapping["Condition"].as_str(), Some("HasCustomDomain"));
    assert_eq!(intrinsic(&mapping["Properties"]["ApiId"]), Some(("Ref", "PublicApi")));
    assert_eq!(intrinsic(&mapping["Properties"]["DomainName"]), Some(("Ref", domains[0].as_str())));
}

#[test]
fn the_public_api_allows_cors_only_for_the_configured_web_origin() {
    let template = Template::load(&template::default_path()).unwrap();
    let parameter = &template.raw()["Parameters"]["AllowedWebOrigin"];
    assert_eq!(parameter["Default"].as_str(), Some(""), "no CORS unless asked");
    let pattern = pattern_of(parameter);
    assert!(pattern.is_valid(&serde_json::json!("https://www.company.example")));
    for wrong in ["*", "http://www.company.example", "https://www.company.example/form"] {
        assert!(!pattern.is_valid(&serde_json::json!(wrong)), "AllowedWebOrigin accepts {wrong}");
    }
    let cors = &resource(&template, "PublicApi")["Properties"]["CorsConfiguration"];
    let (condition, then, otherwise) = if_branches(cors).expect("CorsConfiguration: !If [HasWebOrigin, …]");
    assert_eq!(condition, "HasWebOrigin");
    assert!(refers_to(&template.raw()["Conditions"]["HasWebOrigin"], "AllowedWebOrigin"));
    assert!(is_no_value(otherwise), "no CORS at all without an origin");
    let origins = one_or_many(&then["AllowOrigins"]);
    assert_eq!(origins.len(), 1);
    assert_eq!(intrinsic(origins[0]), Some(("Ref", "AllowedWebOrigin")));
    assert!(then["AllowCredentials"].as_bool() != Some(true), "no cookies cross origin");
    assert!(
        resource(&template, "StaffApi")["Properties"]["CorsConfiguration"].is_null(),
        "staff: no browser"
    );
}

/// A parameter's AllowedPattern as a validator of strings.
fn pattern_of(parameter: &Value) -> jsonschema::Validator {
    let pattern = parameter["AllowedPattern"].as_str().expect("an AllowedPattern");
    jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": pattern})).unwrap()
}

// ---------------------------------------------------------------- mail on day one

#[test]
fn the_mail_addresses_have_no_defaults_and_must_be_addresses() {
    let template = Template::load(&template::default_path()).unwrap();
    for name in ["MailFromAddress", "StaffNotificationAddress", "AlarmEmailAddress"] {
        let parameter = &template.raw()["Parameters"][name];
        assert!(parameter["Default"].is_null(), "{name} has a default: a stack that mails nobody");
        let pattern = pattern_of(parameter);
        for address in ["privacy@company.example", "privacy-team@mail.company.example"] {
            assert!(pattern.is_valid(&serde_json::json!(address)), "{name} refuses {address}");
        }
        for wrong in ["", "privacy", "privacy@company", "a@b@company.example", "privacy @company.example"] {
            assert!(!pattern.is_valid(&serde_json::json!(wrong)), "{name} accepts {wrong:?}");
        }
    }
    // Alarms reach someone from the first deploy.
    let subscription = resource(&template, "AlarmEmailSubscription");
    assert!(subscription["Condition"].is_null(), "the alarm subscription is not optional");
    assert_eq!(intrinsic(&subscription["Properties"]["Endpoint"]), Some(("Ref", "AlarmEmailAddress")));
    assert_eq!(intrinsic(&subscription["Properties"]["TopicArn"]), Some(("Ref", "AlarmTopic")));
}

#[test]
fn the_sender_identity_is_its_domain_with_2048_bit_dkim_by_default_its_address_on_request_or_none() {
    let template = Template::load(&template::default_path()).unwrap();
    let mode = &template.raw()["Parameters"]["MailIdentityMode"];
    assert_eq!(mode["Default"].as_str(), Some("domain"));
    let modes: Vec<&str> =
        one_or_many(&mode["AllowedValues"]).into_iter().filter_map(Value::as_str).collect();
    assert_eq!(modes, ["domain", "address", "existing"]);
    let condition_of = |id: &str| {
        let name =
            resource(&template, id)["Condition"].as_str().unwrap_or_else(|| panic!("{id} is unconditional"));
        (name.to_owned(), template.raw()["Conditions"][name].clone())
    };
    let domain_of_sender = parse_yaml("!Select [1, !Split [\"@\", !Ref MailFromAddress]]");
    let mut by_mode = std::collections::BTreeMap::new();
    for id in template.resources_of_type("AWS::SES::EmailIdentity") {
        let (name, condition) = condition_of(&id);
        let properties = &resource(&template, &id)["Properties"];
        assert_eq!(
            intrinsic(&properties["ConfigurationSetAttributes"]["ConfigurationSetName"]),
            Some(("Ref", "MailConfigurationSet")),
            "{id}"
        );
        if condition == parse_yaml("!Equals [!Ref MailIdentityMode, domain]") {
            assert_eq!(properties["EmailIdentity"], domain_of_sender, "{id}: the sender's domain");
            assert_eq!(
                properties["DkimSigningAttributes"]["NextSigningKeyLength"].as_str(),
                Some("RSA_2048_BIT")
            );
            assert_ne!(properties["DkimAttributes"]["SigningEnabled"].as_bool(), Some(false));
            by_mode.insert("domain", (id, name));
        } else if condition == parse_yaml("!Equals [!Ref MailIdentityMode, address]") {
            assert_eq!(intrinsic(&properties["EmailIdentity"]), Some(("Ref", "MailFromAddress")), "{id}");
            by_mode.insert("address", (id, name));
        } else {
            panic!("{id} is created under {name}, which is no MailIdentityMode");
        }
    }
    assert_eq!(by_mode.keys().copied().collect::<Vec<_>>(), ["address", "domain"], "existing creates none");
    // The three Easy DKIM records to publish, when the stack made the domain identity.
    let (domain, condition) = &by_mode["domain"];
    for n in 1..=3 {
        let output = &template.raw()["Outputs"][format!("DkimRecord{n}").as_str()];
        assert_eq!(output["Condition"].as_str(), Some(condition.as_str()), "DkimRecord{n}");
        let (_, text) = intrinsic(&output["Value"]).expect("a !Sub");
        assert!(text.contains(&format!("${{{domain}.DkimDNSTokenName{n}}}")), "{text}");
        assert!(text.contains(&format!("${{{domain}.DkimDNSTokenValue{n}}}")), "{text}");
        assert!(text.contains("CNAME"), "{text}");
    }
}

#[test]
fn every_role_that_sends_mail_may_send_as_the_address_or_its_domain_and_through_the_configuration_set_only() {
    let template = Template::load(&template::default_path()).unwrap();
    let expected = [
        "!Sub arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${MailFromAddress}",
        "!Sub\n- arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${Domain}\n- Domain: !Select [1, !Split [\"@\", !Ref MailFromAddress]]",
        "!Sub arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/${MailConfigurationSet}",
    ]
    .map(parse_yaml);
    let mut senders = Vec::new();
    for role in template.resources_of_type("AWS::IAM::Role") {
        for statement in statements(resource(&template, &role)) {
            if !actions(statement).iter().any(|a| a.starts_with("ses:")) {
                continue;
            }
            assert_eq!(actions(statement), ["ses:SendEmail"], "{role}");
            let resources: Vec<Value> = one_or_many(&statement["Resource"]).into_iter().cloned().collect();
            assert_eq!(
                resources, expected,
                "{role}: the address's identity, its domain's, the configuration set"
            );
            senders.push(role.clone());
        }
    }
    for role in ["IntakeRole", "DispatchRole", "RemindersRole", "AdminRole"] {
        assert!(senders.iter().any(|s| s == role), "{role} sends mail");
    }
}

// ---------------------------------------------------------------- day-one operations

/// The alarms that notify AlarmTopic: their properties.
fn notifying_alarms(template: &Template) -> Vec<&Value> {
    template
        .resources_of_type("AWS::CloudWatch::Alarm")
        .iter()
        .map(|id| &resource(template, id)["Properties"])
        .filter(|a| {
            one_or_many(&a["AlarmActions"]).iter().any(|t| intrinsic(t) == Some(("Ref", "AlarmTopic")))
        })
        .collect()
}

/// The alarm on `namespace`/`metric` for the dimension `name` = `value`.
fn alarm_on<'a>(
    alarms: &[&'a Value],
    namespace: &str,
    metric: &str,
    name: &str,
    value: (&str, &str),
) -> Option<&'a Value> {
    alarms.iter().copied().find(|a| {
        a["Namespace"].as_str() == Some(namespace)
            && a["MetricName"].as_str() == Some(metric)
            && one_or_many(&a["Dimensions"])
                .iter()
                .any(|d| d["Name"].as_str() == Some(name) && intrinsic(&d["Value"]) == Some(value))
    })
}

#[test]
fn every_function_has_an_errors_alarm_and_a_throttles_alarm() {
    let template = Template::load(&template::default_path()).unwrap();
    let alarms = notifying_alarms(&template);
    let mut missing = Vec::new();
    for id in template.resources_of_type("AWS::Serverless::Function") {
        for metric in ["Errors", "Throttles"] {
            match alarm_on(&alarms, "AWS/Lambda", metric, "FunctionName", ("Ref", &id)) {
                Some(alarm) => {
                    assert!(alarm["Threshold"].as_f64().is_some_and(|t| t <= 1.0), "{id} {metric}")
                }
                None => missing.push(format!("{id} {metric}")),
            }
        }
    }
    assert!(missing.is_empty(), "no alarm on: {missing:?}");
}

#[test]
fn the_stream_consumer_has_an_iterator_age_alarm_well_before_its_records_age_out() {
    let template = Template::load(&template::default_path()).unwrap();
    let alarms = notifying_alarms(&template);
    let mut checked = 0;
    for id in template.resources_of_type("AWS::Serverless::Function") {
        for (_, event) in resource(&template, &id)["Properties"]["Events"].as_mapping().into_iter().flatten()
        {
            if event["Type"].as_str() != Some("DynamoDB") {
                continue;
            }
            let alarm = alarm_on(&alarms, "AWS/Lambda", "IteratorAge", "FunctionName", ("Ref", &id))
                .unwrap_or_else(|| panic!("no IteratorAge alarm on {id}"));
            let dropped_after_ms =
                event["Properties"]["MaximumRecordAgeInSeconds"].as_f64().unwrap() * 1000.0;
            let threshold = alarm["Threshold"].as_f64().unwrap();
            assert!(
                threshold * 10.0 <= dropped_after_ms,
                "{id}: alarms at {threshold} ms, drops at {dropped_after_ms}"
            );
            assert_eq!(alarm["Statistic"].as_str(), Some("Maximum"));
            checked += 1;
        }
    }
    assert_eq!(checked, 1, "the table's stream into dispatch");
}

#[test]
fn every_worker_queue_has_an_oldest_message_age_alarm_within_two_visibility_timeouts() {
    let template = Template::load(&template::default_path()).unwrap();
    let alarms = notifying_alarms(&template);
    let sources = template.queue_event_sources().unwrap();
    assert!(sources.len() >= 2, "the export and erasure queues");
    for source in sources {
        let queue_name = format!("{}.QueueName", source.queue);
        let alarm = alarm_on(
            &alarms,
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            ("GetAtt", &queue_name),
        )
        .unwrap_or_else(|| panic!("no oldest-message age alarm on {}", source.queue));
        let visibility =
            resource(&template, &source.queue)["Properties"]["VisibilityTimeout"].as_f64().unwrap();
        let threshold = alarm["Threshold"].as_f64().unwrap();
        // A job seconds old is normal; one past two visibility timeouts was not polled, or failed
        // twice: a person looks while the legal deadline (weeks) is far.
        assert!(threshold > 0.0 && threshold <= 2.0 * visibility, "{}: {threshold} s", source.queue);
        assert_eq!(alarm["Statistic"].as_str(), Some("Maximum"), "{}", source.queue);
    }
}

#[test]
fn both_apis_alarm_on_any_5xx() {
    let template = Template::load(&template::default_path()).unwrap();
    let alarms = notifying_alarms(&template);
    let apis = template.resources_of_type("AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 2);
    for api in apis {
        let alarm = alarm_on(&alarms, "AWS/ApiGateway", "5xx", "ApiId", ("Ref", &api))
            .unwrap_or_else(|| panic!("no 5xx alarm on {api}"));
        assert_eq!(alarm["Threshold"].as_f64(), Some(1.0), "{api}");
        assert_eq!(alarm["ComparisonOperator"].as_str(), Some("GreaterThanOrEqualToThreshold"), "{api}");
        assert_eq!(alarm["Statistic"].as_str(), Some("Sum"), "{api}");
    }
}

#[test]
fn every_function_is_traced_and_its_role_may_write_traces_the_only_thing_it_may_do_on_any_resource() {
    let template = Template::load(&template::default_path()).unwrap();
    assert_eq!(template.raw()["Globals"]["Function"]["Tracing"].as_str(), Some("Active"));
    for (function, _, role) in function_roles(&template) {
        let own = &resource(&template, &function)["Properties"]["Tracing"];
        assert!(own.is_null() || own.as_str() == Some("Active"), "{function} turns tracing off");
        let statements = statements(resource(&template, &role));
        assert_eq!(statements.iter().filter(|s| writes_traces(s)).count(), 1, "{role} writes traces");
        for statement in statements.iter().filter(|s| !writes_traces(s)) {
            for arn in one_or_many(&statement["Resource"]) {
                assert_ne!(arn.as_str(), Some("*"), "{role}: {:?} on *", actions(statement));
            }
        }
    }
}

/// The metrics a dashboard body shows: (namespace, metric, dimension value), with `${X}` of the
/// `!Sub` kept as `<X>`.
fn dashboard_metrics(body: &str) -> Vec<(String, String, String)> {
    let mut json = String::new();
    let mut rest = body;
    while let Some(at) = rest.find("${") {
        json.push_str(&rest[..at]);
        let end = rest[at..].find('}').unwrap() + at;
        json.push_str(&format!("<{}>", &rest[at + 2..end]));
        rest = &rest[end + 1..];
    }
    json.push_str(rest);
    let body: serde_json::Value = serde_json::from_str(&json).expect("the dashboard body is JSON");
    let mut metrics = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let text = |i: usize| metric[i].as_str().unwrap_or_default().to_owned();
            metrics.push((text(0), text(1), text(3)));
        }
    }
    metrics
}

#[test]
fn the_dashboard_shows_every_function_queue_and_api_and_the_overdue_count() {
    let template = Template::load(&template::default_path()).unwrap();
    let dashboards = template.resources_of_type("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let (_, body) = intrinsic(&resource(&template, &dashboards[0])["Properties"]["DashboardBody"]).unwrap();
    let shown = dashboard_metrics(body);
    let shows = |namespace: &str, metric: &str, of: &str| {
        shown.iter().any(|(n, m, v)| n == namespace && m == metric && v == &format!("<{of}>"))
    };
    let mut missing = Vec::new();
    for id in template.resources_of_type("AWS::Serverless::Function") {
        for metric in ["Invocations", "Errors", "Duration", "Throttles"] {
            if !shows("AWS/Lambda", metric, &id) {
                missing.push(format!("{metric} of {id}"));
            }
        }
    }
    for queue in template.resources_of_type("AWS::SQS::Queue") {
        if !shows("AWS/SQS", "ApproximateNumberOfMessagesVisible", &format!("{queue}.QueueName")) {
            missing.push(format!("the depth of {queue}"));
        }
    }
    for source in template.queue_event_sources().unwrap() {
        if !shows("AWS/SQS", "ApproximateAgeOfOldestMessage", &format!("{}.QueueName", source.queue)) {
            missing.push(format!("the oldest job of {}", source.queue));
        }
    }
    for api in template.resources_of_type("AWS::Serverless::HttpApi") {
        for metric in ["4xx", "5xx"] {
            if !shows("AWS/ApiGateway", metric, &api) {
                missing.push(format!("{metric} of {api}"));
            }
        }
    }
    if !shows("PrivacyRequests", "OverdueRequests", "AWS::StackName") {
        missing.push("OverdueRequests".to_owned());
    }
    assert!(missing.is_empty(), "the dashboard lacks {missing:?}");
}

#[test]
fn every_dead_letter_queue_and_the_stream_failure_queue_are_outputs_by_url_and_arn() {
    let template = Template::load(&template::default_path()).unwrap();
    let target =
        |value: &Value| intrinsic(value).and_then(|(_, t)| t.strip_suffix(".Arn")).map(str::to_owned);
    let mut dead_letters = std::collections::BTreeSet::new();
    for (_, r) in all_resources(&template) {
        let properties = &r["Properties"];
        dead_letters.extend(target(&properties["RedrivePolicy"]["deadLetterTargetArn"]));
        dead_letters.extend(target(&properties["DeadLetterQueue"]["TargetArn"]));
        dead_letters.extend(target(&properties["Target"]["DeadLetterConfig"]["Arn"]));
        for (_, event) in properties["Events"].as_mapping().into_iter().flatten() {
            dead_letters
                .extend(target(&event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]));
        }
    }
    assert!(dead_letters.contains("DispatchFailureQueue") && dead_letters.len() >= 4, "{dead_letters:?}");
    let outputs: Vec<Value> =
        template.raw()["Outputs"].as_mapping().unwrap().iter().map(|(_, o)| o["Value"].clone()).collect();
    for queue in dead_letters {
        let url = parse_yaml(&format!("!Ref {queue}"));
        let arn = parse_yaml(&format!("!GetAtt {queue}.Arn"));
        assert!(outputs.contains(&url), "no output of {queue}'s URL");
        assert!(outputs.contains(&arn), "no output of {queue}'s ARN");
    }
}

// ---------------------------------------------------------------- tombstones (CCPA §7022(d))

#[test]
fn tombstones_live_in_a_retained_table_of_their_own_that_outlives_the_backups() {
    let template = Template::load(&template::default_path()).unwrap();
    let table = resource(&template, "TombstonesTable");
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"));
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    let properties = &table["Properties"];
    assert!(properties["StreamSpecification"].is_null(), "nothing consumes its changes");
    assert_eq!(properties["TimeToLiveSpecification"]["AttributeName"].as_str(), Some("ttl"));
    assert_eq!(
        properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(intrinsic(&properties["SSESpecification"]["KMSMasterKeyId"]), Some(("Ref", "DataKey")));
    let spec = template.tombstones_table().unwrap();
    let keys: Vec<&str> = spec.key_schema.iter().map(|k| k.attribute_name.as_str()).collect();
    assert_eq!(keys, ["pk", "sk"]);
    // Kept at least as long as point-in-time recovery keeps a backup (35 days).
    let retention = &template.raw()["Parameters"]["TombstoneRetentionDays"];
    assert_eq!(
        retention["MinValue"].as_u64(),
        Some(u64::from(privacy_shared::tombstones::MIN_RETENTION_DAYS))
    );
    assert!(retention["Default"].as_u64().unwrap() >= 35);
    for function in ["ErasureFunction", "AdminFunction"] {
        let variables = &resource(&template, function)["Properties"]["Environment"]["Variables"];
        assert_eq!(intrinsic(&variables["TOMBSTONES_TABLE"]), Some(("Ref", "TombstonesTable")), "{function}");
        assert_eq!(
            intrinsic(&variables["TOMBSTONE_RETENTION_DAYS"]),
            Some(("Ref", "TombstoneRetentionDays"))
        );
    }
}

#[test]
fn only_the_erasure_holds_the_tombstone_key_and_only_erasure_and_admin_touch_tombstones_each_as_it_needs() {
    let template = Template::load(&template::default_path()).unwrap();
    let text = std::fs::read_to_string(template::default_path()).unwrap();
    assert_eq!(text.matches("${TombstoneKey}").count(), 1, "one function is given the key");
    let erasure = &resource(&template, "ErasureFunction")["Properties"]["Environment"]["Variables"];
    assert!(intrinsic(&erasure["TOMBSTONE_KEY"]).is_some_and(|(_, v)| v.contains("${TombstoneKey}")));
    let mut touching = Vec::new();
    for role in template.resources_of_type("AWS::IAM::Role") {
        let mut granted: Vec<String> = Vec::new();
        for statement in all_statements(&template, &role) {
            if one_or_many(&statement["Resource"]).iter().any(|r| arn_text(r).contains("TombstonesTable")) {
                granted.extend(actions(statement));
                if role == "AdminRole" {
                    let keys = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                    assert_eq!(
                        yaml(keys).trim(),
                        "- REPLAY#*",
                        "the staff API writes replay runs, never a tombstone"
                    );
                }
            }
        }
        if granted.is_empty() {
            continue;
        }
        granted.sort();
        let expected: &[&str] = match role.as_str() {
            "ErasureRole" => &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"],
            "AdminRole" => &["dynamodb:GetItem", "dynamodb:PutItem"],
            other => panic!("{other} touches the tombstones"),
        };
        assert_eq!(granted, expected, "{role}");
        touching.push(role);
    }
    touching.sort();
    assert_eq!(touching, ["AdminRole", "ErasureRole"]);
    let admin = resource(&template, "AdminRole");
    assert!(
        granted(admin, "sqs:SendMessage").iter().all(|(arn, _)| arn == "ErasureQueue.Arn"),
        "the replays' jobs"
    );
}

#[test]
fn a_replay_may_scan_every_table_source_of_the_data_map() {
    let template = Template::load(&template::default_path()).unwrap();
    let role = resource(&template, "ErasureRole");
    for (id, location) in data_map_resources() {
        if let MapResource::Table { table, .. } = location {
            assert!(
                granted(role, "dynamodb:Scan").iter().any(|(arn, _)| arn.ends_with(&table)),
                "ErasureRole cannot scan {table} (data map source {id})"
            );
        }
    }
}
