//! Rules the deployed template must keep, checked by reading it (no emulator needed): routes,
//! roles, queues, alarms, and the environment each function is given.

use devstack::template::{self, Template};
use privacy_shared::store::DUE_INDEX;
use serde_norway::Value;

#[test]
fn there_are_eight_functions_each_built_from_its_own_binary() {
    let template = Template::load(&template::default_path()).unwrap();
    let mut binaries: Vec<&str> = template
        .resources_of_type("AWS::Serverless::Function")
        .iter()
        .map(|id| binary(&template, id))
        .collect();
    binaries.sort_unstable();
    assert_eq!(
        binaries,
        ["admin", "dispatch", "download", "erasure", "export", "intake", "reminders", "verify"]
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
        let function = Function::ALL.into_iter().find(|f| f.name() == name).unwrap();
        let given = given_environment(&template, &id);
        let pairs: Vec<(&str, &str)> = given.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let env = Env::from_pairs(&pairs);
        function
            .load(&env)
            .unwrap_or_else(|e| panic!("{name} does not start with the template's settings: {e}"));
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
        };
        for arn in needed {
            assert!(text.contains(&arn), "ExportRole lacks {arn:?} for data map source {}", source.id);
        }
    }
}

// ------------------------------------------------------------------ the sweep and the staff API

/// `!Tag value` as (tag, value), for the template's intrinsic functions.
fn intrinsic(value: &Value) -> Option<(&str, &str)> {
    match value {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let known = ["Ref", "GetAtt", "Sub"].into_iter().find(|k| *k == tag)?;
            Some((known, t.value.as_str()?))
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

const STAFF_ROUTES: [(&str, &str); 7] = [
    ("GET", "/staff/requests"),
    ("GET", "/staff/requests/{id}"),
    ("POST", "/staff/requests/{id}/extend"),
    ("POST", "/staff/requests/{id}/deny"),
    ("POST", "/staff/requests/{id}/excessive"),
    ("POST", "/staff/requests/{id}/complete"),
    ("POST", "/staff/suppressions/check"),
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
    let mut routes: Vec<String> =
        STAFF_ROUTES.iter().map(|(m, p)| format!("{m}{}", p.replace("{id}", "*"))).collect();
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

    // Never two sweeps at once; a failed sweep is retried by Lambda, then dead-lettered.
    let function = &resource(&template, "RemindersFunction")["Properties"];
    assert_eq!(function["ReservedConcurrentExecutions"].as_u64(), Some(1));
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
    let text = std::fs::read_to_string("../functions/intake/src/lib.rs").unwrap();
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

#[test]
fn the_admin_and_reminders_roles_grant_no_wildcard_action_or_resource() {
    let template = Template::load(&template::default_path()).unwrap();
    for (function, role) in [
        ("AdminFunction", "AdminRole"),
        ("RemindersFunction", "RemindersRole"),
        ("", "RemindersScheduleRole"),
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
            for resource in one_or_many(&statement["Resource"]) {
                let arn = match intrinsic(resource) {
                    Some((_, arn)) => arn.to_owned(),
                    None => resource.as_str().unwrap().to_owned(),
                };
                // Only a log group's streams (`${…Logs.Arn}:*`) end in a wildcard.
                let log_streams = arn.starts_with("${") && arn.ends_with("Logs.Arn}:*");
                assert!(!arn.contains('*') || log_streams, "{role} grants {arn}");
            }
        }
    }
    let admin = statements(resource(&template, "AdminRole"));
    assert!(
        !admin.iter().any(|s| actions(s).iter().any(|a| a.starts_with("ses:"))),
        "the admin sends no mail"
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
        let route = format!(
            "\"{}\" = [{{ method = \"{}\", function = \"{binary}\" }}]",
            event["Path"].as_str().unwrap(),
            event["Method"].as_str().unwrap().to_uppercase()
        );
        assert!(router.contains(&route), "the local router lacks {route}");
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
            assert!(arn == "RequestsTable.Arn" || in_map_table(&arn), "ErasureRole grants {action} on {arn}");
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
        for resource in one_or_many(&statement["Resource"]) {
            let arn = arn_text(resource);
            // Only a log group's streams and object prefixes end in a wildcard.
            let allowed = arn == "${ErasureLogs.Arn}:*"
                || arn == EXPORTS
                || map.iter().any(|(_, r)| matches!(r, MapResource::Objects { objects, .. } if arn.ends_with(objects.as_str())));
            assert!(!arn.contains('*') || allowed, "ErasureRole grants {arn}");
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
    assert!(function["ReservedConcurrentExecutions"].as_u64().is_some_and(|n| (1..=5).contains(&n)));
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
fn dispatch_may_read_the_accounts_source_but_write_no_source_of_the_data_map() {
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
    // On the map's sources: reading the accounts, nothing more (no write, no other source).
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
                assert_eq!(id, "accounts", "DispatchRole may touch {arn} (data map source {id})");
                for action in actions(statement) {
                    assert!(
                        ["dynamodb:GetItem", "dynamodb:Query"].contains(&action.as_str()),
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
