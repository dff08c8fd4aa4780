//! Each function's IAM role, made in the emulator from the template, so every function runs
//! locally with its own role's credentials and the emulator's IAM guard (dev/iam_guard.py) refuses
//! what the role does not allow, as AWS would.
//!
//! CloudFormation resolves `!Ref`, `!GetAtt`, `!Sub`, `!If` … to the deployed stack's physical
//! names; [`Names`] is that resolution for one local stack (the local table, bucket and queue
//! names, the data map's sources under their local prefix).

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value as Json};
use serde_norway::Value;
use std::collections::HashMap;
use std::fmt::Write as _;

use crate::template::Template;

pub const ACCOUNT: &str = "123456789012";

/// A function of the template and the role it runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionRole {
    /// The function's logical id, its binary (what `cargo lambda watch` serves it as) and its
    /// role's logical id (`Role: !GetAtt <id>.Arn`).
    pub function: String,
    pub binary: String,
    pub role: String,
}

/// Credentials of one function's role, from STS (`AssumeRole`) in the emulator.
#[derive(Clone)]
pub struct RoleCredentials {
    pub binary: String,
    pub role_name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl std::fmt::Debug for RoleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleCredentials")
            .field("binary", &self.binary)
            .field("role_name", &self.role_name)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl RoleCredentials {
    /// An SDK configuration like `base` that signs with this role.
    pub fn sdk(&self, base: &aws_config::SdkConfig) -> aws_config::SdkConfig {
        base.to_builder()
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    &self.access_key_id,
                    &self.secret_access_key,
                    Some(self.session_token.clone()),
                    None,
                    "local-role",
                ),
            ))
            .build()
    }
}

/// What the template's names resolve to in one local stack.
#[derive(Clone, Debug)]
pub struct Names {
    pub region: String,
    pub stack_name: String,
    /// Parameter values over the template's defaults.
    pub parameters: HashMap<String, String>,
    /// Physical names of resources whose local name is not `<stack>-<logical id>`.
    pub physical: HashMap<String, String>,
    /// The data map's sources as the template names them (unprefixed) and their local prefix.
    pub source_tables: Vec<String>,
    pub source_buckets: Vec<String>,
    pub source_prefix: String,
}

impl Names {
    pub fn new(region: &str, stack_name: &str) -> Names {
        Names {
            region: region.to_owned(),
            stack_name: stack_name.to_owned(),
            parameters: HashMap::new(),
            physical: HashMap::new(),
            source_tables: Vec::new(),
            source_buckets: Vec::new(),
            source_prefix: String::new(),
        }
    }

    pub fn parameter(mut self, name: &str, value: &str) -> Names {
        self.parameters.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn resource(mut self, logical_id: &str, physical: &str) -> Names {
        self.physical.insert(logical_id.to_owned(), physical.to_owned());
        self
    }

    /// The data map's sources: their names as the template's policies give them, and the prefix
    /// they carry locally (`DataMap::with_name_prefix`).
    pub fn sources(mut self, map: &privacy_shared::datamap::DataMap, prefix: &str) -> Names {
        use privacy_shared::datamap::Location;
        for source in map.sources() {
            match &source.location {
                Location::Table { table, .. } => self.source_tables.push(table.clone()),
                Location::Objects { bucket, .. } => self.source_buckets.push(bucket.clone()),
                // Not AWS resources of the stack: nothing for a role to name.
                Location::Webhook { .. } | Location::Manual { .. } => {}
            }
        }
        self.source_tables.sort();
        self.source_tables.dedup();
        self.source_buckets.sort();
        self.source_buckets.dedup();
        self.source_prefix = prefix.to_owned();
        self
    }

    /// The role's name in the emulator (IAM allows 64 characters).
    pub fn role_name(&self, logical_id: &str) -> String {
        let mut name = format!("{}-{logical_id}", self.stack_name);
        name.truncate(64);
        name
    }

    fn physical_name(&self, logical_id: &str) -> String {
        self.physical.get(logical_id).cloned().unwrap_or_else(|| format!("{}-{logical_id}", self.stack_name))
    }

    /// A data map source's ARN as the template writes it, with the local prefix.
    fn localise(&self, text: &str) -> String {
        if self.source_prefix.is_empty() {
            return text.to_owned();
        }
        let mut out = text.to_owned();
        for (marker, names) in [(":table/", &self.source_tables), (":s3:::", &self.source_buckets)] {
            for name in names {
                let from = format!("{marker}{name}");
                let to = format!("{marker}{}{name}", self.source_prefix);
                for end in ["/", ""] {
                    if end.is_empty() && out.ends_with(&from) {
                        out = format!("{}{to}", &out[..out.len() - from.len()]);
                    } else if !end.is_empty() {
                        out = out.replace(&format!("{from}{end}"), &format!("{to}{end}"));
                    }
                }
            }
        }
        out
    }
}

/// Resolves the template's intrinsic functions against [`Names`].
pub struct Resolver<'a> {
    template: &'a Template,
    names: &'a Names,
}

/// A value after resolution: `AWS::NoValue` disappears from the list or mapping that holds it.
enum Resolved {
    Value(Json),
    NoValue,
}

impl<'a> Resolver<'a> {
    pub fn new(template: &'a Template, names: &'a Names) -> Resolver<'a> {
        Resolver { template, names }
    }

    fn root(&self) -> &Value {
        self.template.raw()
    }

    fn parameter(&self, name: &str) -> Option<String> {
        if let Some(value) = self.names.parameters.get(name) {
            return Some(value.clone());
        }
        match &self.root()["Parameters"][name] {
            Value::Null => None,
            p => match &p["Default"] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => Some(String::new()),
            },
        }
    }

    /// What `!Ref name` is.
    fn reference(&self, name: &str) -> Result<Resolved> {
        let n = self.names;
        let value = match name {
            "AWS::NoValue" => return Ok(Resolved::NoValue),
            "AWS::Region" => n.region.clone(),
            "AWS::AccountId" => ACCOUNT.to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackName" => n.stack_name.clone(),
            "AWS::StackId" => {
                format!("arn:aws:cloudformation:{}:{ACCOUNT}:stack/{}/local", n.region, n.stack_name)
            }
            _ => {
                if let Some(value) = self.parameter(name) {
                    if self.root()["Parameters"][name]["Type"].as_str() == Some("CommaDelimitedList") {
                        let items = value.split(',').map(|v| Json::String(v.trim().to_owned())).collect();
                        return Ok(Resolved::Value(Json::Array(items)));
                    }
                    value
                } else {
                    let kind = self.root()["Resources"][name]["Type"]
                        .as_str()
                        .with_context(|| format!("!Ref {name}: no such parameter or resource"))?;
                    let physical = n.physical_name(name);
                    match kind {
                        "AWS::SQS::Queue" => format!("http://localhost/{ACCOUNT}/{physical}"),
                        "AWS::SNS::Topic" | "AWS::IAM::ManagedPolicy" => self.arn(name)?,
                        _ => physical,
                    }
                }
            }
        };
        Ok(Resolved::Value(Json::String(value)))
    }

    fn arn(&self, logical_id: &str) -> Result<String> {
        let n = self.names;
        let (region, physical) = (&n.region, n.physical_name(logical_id));
        let kind = self.root()["Resources"][logical_id]["Type"]
            .as_str()
            .with_context(|| format!("!GetAtt {logical_id}.Arn: no such resource"))?;
        Ok(match kind {
            "AWS::DynamoDB::Table" => format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{physical}"),
            "AWS::SQS::Queue" => format!("arn:aws:sqs:{region}:{ACCOUNT}:{physical}"),
            "AWS::S3::Bucket" => format!("arn:aws:s3:::{physical}"),
            "AWS::Logs::LogGroup" => format!("arn:aws:logs:{region}:{ACCOUNT}:log-group:{physical}:*"),
            "AWS::KMS::Key" => format!("arn:aws:kms:{region}:{ACCOUNT}:key/{physical}"),
            "AWS::SNS::Topic" => format!("arn:aws:sns:{region}:{ACCOUNT}:{physical}"),
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
                format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{physical}")
            }
            "AWS::IAM::Role" => format!("arn:aws:iam::{ACCOUNT}:role/{}", n.role_name(logical_id)),
            "AWS::IAM::ManagedPolicy" => format!("arn:aws:iam::{ACCOUNT}:policy/{physical}"),
            other => bail!("!GetAtt {logical_id}.Arn: no local ARN for {other}"),
        })
    }

    fn get_att(&self, logical_id: &str, attribute: &str) -> Result<String> {
        match attribute {
            "Arn" => self.arn(logical_id),
            "StreamArn" => Ok(format!("{}/stream/local", self.arn(logical_id)?)),
            "QueueName" | "TopicName" => Ok(self.names.physical_name(logical_id)),
            "QueueUrl" => match self.reference(logical_id)? {
                Resolved::Value(Json::String(url)) => Ok(url),
                _ => bail!("{logical_id} has no URL"),
            },
            other => bail!("!GetAtt {logical_id}.{other} is not known locally"),
        }
    }

    fn condition(&self, name: &str) -> Result<bool> {
        let definition = &self.root()["Conditions"][name];
        if definition.is_null() {
            bail!("no condition {name}");
        }
        self.truth(definition)
    }

    fn truth(&self, value: &Value) -> Result<bool> {
        let (function, argument) = intrinsic(value).with_context(|| format!("not a condition: {value:?}"))?;
        let args = || argument.as_sequence().cloned().unwrap_or_default();
        Ok(match function {
            "Fn::Equals" => {
                let args = args();
                let [a, b] = args.as_slice() else { bail!("Fn::Equals takes two values") };
                self.scalar(a)? == self.scalar(b)?
            }
            "Fn::Not" => !self.truth(args().first().context("Fn::Not takes one condition")?)?,
            "Fn::And" => {
                args().iter().map(|c| self.truth(c)).collect::<Result<Vec<_>>>()?.into_iter().all(|b| b)
            }
            "Fn::Or" => {
                args().iter().map(|c| self.truth(c)).collect::<Result<Vec<_>>>()?.into_iter().any(|b| b)
            }
            "Condition" => self.condition(argument.as_str().context("Condition takes a name")?)?,
            other => bail!("{other} is not a condition function"),
        })
    }

    fn scalar(&self, value: &Value) -> Result<String> {
        match self.resolve(value)? {
            Resolved::Value(Json::String(s)) => Ok(s),
            Resolved::Value(Json::Number(n)) => Ok(n.to_string()),
            Resolved::Value(Json::Bool(b)) => Ok(b.to_string()),
            Resolved::Value(other) => Ok(other.to_string()),
            Resolved::NoValue => bail!("AWS::NoValue where a value is needed"),
        }
    }

    fn list(&self, value: &Value) -> Result<Vec<String>> {
        match self.resolve(value)? {
            Resolved::Value(Json::Array(items)) => Ok(items
                .into_iter()
                .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
                .collect()),
            Resolved::Value(Json::String(s)) => Ok(vec![s]),
            _ => bail!("expected a list: {value:?}"),
        }
    }

    fn sub(&self, text: &str, variables: &HashMap<String, String>) -> Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').with_context(|| format!("unclosed ${{ in {text:?}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                let _ = write!(out, "${{{literal}}}");
            } else if let Some(value) = variables.get(name) {
                out.push_str(value);
            } else if let Some((resource, attribute)) =
                name.split_once('.').filter(|(r, _)| !r.starts_with("AWS::"))
            {
                out.push_str(&self.get_att(resource, attribute)?);
            } else {
                match self.reference(name)? {
                    Resolved::Value(Json::String(s)) => out.push_str(&s),
                    _ => bail!("${{{name}}} has no string value"),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn resolve(&self, value: &Value) -> Result<Resolved> {
        if let Some((function, argument)) = intrinsic(value) {
            return self.call(function, argument);
        }
        Ok(Resolved::Value(match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => serde_json::to_value(n)?,
            Value::String(s) => Json::String(self.names.localise(s)),
            Value::Sequence(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Resolved::Value(v) = self.resolve(item)? {
                        out.push(v);
                    }
                }
                Json::Array(out)
            }
            Value::Mapping(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    let key = k.as_str().map(str::to_owned).unwrap_or_else(|| format!("{k:?}"));
                    if let Resolved::Value(v) = self.resolve(v)? {
                        out.insert(key, v);
                    }
                }
                Json::Object(out)
            }
            Value::Tagged(tagged) => bail!("unknown tag !{}", tagged.tag),
        }))
    }

    fn call(&self, function: &str, argument: &Value) -> Result<Resolved> {
        let string = |s: String| Ok(Resolved::Value(Json::String(self.names.localise(&s))));
        match function {
            "Ref" => self.reference(argument.as_str().context("!Ref takes a name")?),
            "Fn::GetAtt" => {
                let (resource, attribute) = match argument {
                    Value::String(s) => s.split_once('.').context("!GetAtt Resource.Attribute")?,
                    Value::Sequence(parts) => (
                        parts.first().and_then(Value::as_str).context("!GetAtt [Resource, Attribute]")?,
                        parts.get(1).and_then(Value::as_str).context("!GetAtt [Resource, Attribute]")?,
                    ),
                    _ => bail!("!GetAtt takes Resource.Attribute"),
                };
                string(self.get_att(resource, attribute)?)
            }
            "Fn::Sub" => match argument {
                Value::String(text) => string(self.sub(text, &HashMap::new())?),
                Value::Sequence(parts) => {
                    let text = parts.first().and_then(Value::as_str).context("!Sub [text, variables]")?;
                    let mut variables = HashMap::new();
                    if let Some(map) = parts.get(1).and_then(Value::as_mapping) {
                        for (k, v) in map {
                            variables.insert(k.as_str().unwrap_or_default().to_owned(), self.scalar(v)?);
                        }
                    }
                    string(self.sub(text, &variables)?)
                }
                _ => bail!("!Sub takes a string or [string, variables]"),
            },
            "Fn::If" => {
                let parts = argument.as_sequence().context("!If [condition, then, else]")?;
                let [name, then, otherwise] = parts.as_slice() else { bail!("!If takes three values") };
                let chosen = if self.condition(name.as_str().context("!If condition name")?)? {
                    then
                } else {
                    otherwise
                };
                self.resolve(chosen)
            }
            "Fn::Select" => {
                let parts = argument.as_sequence().context("!Select [index, list]")?;
                let index: usize = self.scalar(parts.first().context("!Select index")?)?.parse()?;
                let list = self.list(parts.get(1).context("!Select list")?)?;
                string(list.get(index).cloned().with_context(|| format!("!Select {index} out of range"))?)
            }
            "Fn::Split" => {
                let parts = argument.as_sequence().context("!Split [delimiter, text]")?;
                let delimiter = parts.first().and_then(Value::as_str).context("!Split delimiter")?;
                let text = self.scalar(parts.get(1).context("!Split text")?)?;
                Ok(Resolved::Value(Json::Array(
                    text.split(delimiter).map(|s| Json::String(s.to_owned())).collect(),
                )))
            }
            "Fn::Join" => {
                let parts = argument.as_sequence().context("!Join [delimiter, list]")?;
                let delimiter = parts.first().and_then(Value::as_str).unwrap_or_default();
                string(self.list(parts.get(1).context("!Join list")?)?.join(delimiter))
            }
            "Condition" => Ok(Resolved::Value(Json::Bool(
                self.condition(argument.as_str().context("Condition takes a name")?)?,
            ))),
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" => {
                let mut wrapped = serde_norway::Mapping::new();
                wrapped.insert(Value::String(function.to_owned()), argument.clone());
                Ok(Resolved::Value(Json::Bool(self.truth(&Value::Mapping(wrapped))?)))
            }
            other => bail!("{other} is not resolved locally"),
        }
    }

    /// A property of a resource, every intrinsic function resolved.
    pub fn property(&self, logical_id: &str, path: &[&str]) -> Result<Json> {
        let mut value = &self.root()["Resources"][logical_id];
        if value.is_null() {
            bail!("no resource {logical_id}");
        }
        for key in path {
            value = &value[*key];
        }
        match self.resolve(value)? {
            Resolved::Value(v) => Ok(v),
            Resolved::NoValue => Ok(Json::Null),
        }
    }
}

/// The intrinsic functions resolved locally, by their long names.
const INTRINSICS: [&str; 12] = [
    "Ref",
    "Condition",
    "Fn::GetAtt",
    "Fn::Sub",
    "Fn::If",
    "Fn::Select",
    "Fn::Split",
    "Fn::Join",
    "Fn::Equals",
    "Fn::Not",
    "Fn::And",
    "Fn::Or",
];

/// `!Tag x` or `{"Fn::Tag": x}` as ("Fn::Tag", x); `!Ref`/`!Condition` keep their short names. A
/// long form this module does not resolve is "Fn::Unknown" (refused when called); a short tag it
/// does not know is not an intrinsic here (refused as an unknown tag).
fn intrinsic(value: &Value) -> Option<(&'static str, &Value)> {
    let known = |name: &str| INTRINSICS.iter().find(|n| **n == name).copied();
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let short = tag.trim_start_matches('!');
            let long =
                if matches!(short, "Ref" | "Condition") { short.to_owned() } else { format!("Fn::{short}") };
            known(&long).map(|name| (name, &tagged.value))
        }
        Value::Mapping(map) if map.len() == 1 => {
            let (key, argument) = map.iter().next()?;
            let key = key.as_str()?;
            (key == "Ref" || key == "Condition" || key.starts_with("Fn::"))
                .then(|| (known(key).unwrap_or("Fn::Unknown"), argument))
        }
        _ => None,
    }
}

impl Template {
    /// Every function with its binary and the role it runs under, in file order.
    pub fn function_roles(&self) -> Result<Vec<FunctionRole>> {
        let mut out = Vec::new();
        for function in self.resources_of_type("AWS::Serverless::Function") {
            let resource = &self.raw()["Resources"][function.as_str()];
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .with_context(|| format!("{function} has no BuildProperties.Binary"))?
                .to_owned();
            let role = match &resource["Properties"]["Role"] {
                Value::Tagged(t) if t.tag == "GetAtt" => {
                    t.value.as_str().and_then(|s| s.strip_suffix(".Arn")).map(str::to_owned)
                }
                _ => None,
            }
            .with_context(|| format!("{function}: Role must be !GetAtt <Role>.Arn"))?;
            out.push(FunctionRole { function, binary, role });
        }
        Ok(out)
    }
}

/// A role as the template defines it, resolved: its trust policy and inline policies.
#[derive(Clone, Debug)]
pub struct RoleDefinition {
    pub name: String,
    pub trust: Json,
    pub policies: Vec<(String, Json)>,
}

pub fn role_definition(template: &Template, names: &Names, logical_id: &str) -> Result<RoleDefinition> {
    let resolver = Resolver::new(template, names);
    let trust = resolver.property(logical_id, &["Properties", "AssumeRolePolicyDocument"])?;
    let mut policies = Vec::new();
    if let Json::Array(items) = resolver.property(logical_id, &["Properties", "Policies"])? {
        for policy in items {
            let name = policy["PolicyName"].as_str().context("PolicyName")?.to_owned();
            policies.push((name, policy["PolicyDocument"].clone()));
        }
    }
    // Policies of their own that name the role (`AWS::IAM::Policy` with `Roles: [!Ref <role>]`),
    // where their condition holds.
    for id in template.resources_of_type("AWS::IAM::Policy") {
        let resource = &template.raw()["Resources"][id.as_str()];
        if let Some(condition) = resource["Condition"].as_str()
            && !resolver.condition(condition)?
        {
            continue;
        }
        let names_role = resource["Properties"]["Roles"].as_sequence().is_some_and(|roles| {
            roles.iter().any(
                |r| matches!(r, Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some(logical_id)),
            )
        });
        if names_role {
            let name = resolver.property(&id, &["Properties", "PolicyName"])?;
            let document = resolver.property(&id, &["Properties", "PolicyDocument"])?;
            policies.push((name.as_str().unwrap_or(id.as_str()).to_owned(), document));
        }
    }
    Ok(RoleDefinition { name: names.role_name(logical_id), trust, policies })
}

/// Creates every function's role in the emulator (with the developer's credentials in `sdk`)
/// and assumes it: one set of credentials per function binary.
pub async fn provision_roles(
    sdk: &aws_config::SdkConfig,
    template: &Template,
    names: &Names,
) -> Result<Vec<RoleCredentials>> {
    let iam = aws_sdk_iam::Client::new(sdk);
    let sts = aws_sdk_sts::Client::new(sdk);
    let mut made: HashMap<String, RoleDefinition> = HashMap::new();
    let mut out = Vec::new();
    for function in template.function_roles()? {
        if !made.contains_key(&function.role) {
            let role = role_definition(template, names, &function.role)?;
            create_role(&iam, &role).await?;
            made.insert(function.role.clone(), role);
        }
        let role = &made[&function.role];
        let assumed = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{}", role.name))
            .role_session_name(&function.binary)
            .duration_seconds(43_200)
            .send()
            .await
            .with_context(|| format!("assuming {}", role.name))?;
        let credentials = assumed.credentials.context("AssumeRole returned no credentials")?;
        out.push(RoleCredentials {
            binary: function.binary,
            role_name: role.name.clone(),
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
            session_token: credentials.session_token,
        });
    }
    Ok(out)
}

async fn create_role(iam: &aws_sdk_iam::Client, role: &RoleDefinition) -> Result<()> {
    match iam
        .create_role()
        .role_name(&role.name)
        .assume_role_policy_document(role.trust.to_string())
        .send()
        .await
    {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_entity_already_exists_exception()) => {}
        Err(err) => return Err(anyhow!(err)).with_context(|| format!("creating role {}", role.name)),
    }
    for (name, document) in &role.policies {
        iam.put_role_policy()
            .role_name(&role.name)
            .policy_name(name)
            .policy_document(document.to_string())
            .send()
            .await
            .with_context(|| format!("putting policy {name} on {}", role.name))?;
    }
    Ok(())
}

/// The shared credentials file giving each function binary a profile of its own, for
/// `AWS_SHARED_CREDENTIALS_FILE` with `AWS_PROFILE=<binary>`.
pub fn credentials_file(credentials: &[RoleCredentials]) -> String {
    let mut out =
        String::from("# Made by `devstack provision`: each function's role, assumed in the emulator.\n");
    for c in credentials {
        let _ = write!(
            out,
            "\n[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            c.binary, c.access_key_id, c.secret_access_key, c.session_token
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> Template {
        Template::parse(text).unwrap()
    }

    const TEMPLATE: &str = r#"
Parameters:
  MailFromAddress:
    Type: String
  Mode:
    Type: String
    Default: domain
Conditions:
  IsDomain: !Equals [!Ref Mode, domain]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Queue:
    Type: AWS::SQS::Queue
  Logs:
    Type: AWS::Logs::LogGroup
  Role:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              - Resource:
                  - !GetAtt Table.Arn
                  - !Sub "${Table.Arn}/index/by_due_date"
                  - !Sub "${Logs.Arn}:*"
                  - !GetAtt Queue.Arn
                  - !Sub arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${MailFromAddress}
                  - !If
                    - IsDomain
                    - !Sub
                      - arn:aws:ses:${AWS::Region}:${AWS::AccountId}:identity/${Domain}
                      - Domain: !Select [1, !Split ["@", !Ref MailFromAddress]]
                    - !Ref AWS::NoValue
                  - !Sub arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/accounts
                  - !Sub arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/accounts_x/index/by_user
                  - !Sub arn:${AWS::Partition}:s3:::recordings/recordings/*
"#;

    fn names() -> Names {
        Names::new("eu-west-1", "t1")
            .parameter("MailFromAddress", "privacy@example.org")
            .resource("Table", "requests-1")
            .resource("Queue", "Queue.fifo")
    }

    fn resources(t: &Template, n: &Names) -> Vec<String> {
        let role = role_definition(t, n, "Role").unwrap();
        role.policies[0].1["Statement"][0]["Resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_roles_policies_resolve_to_the_local_stacks_physical_names() {
        let t = template(TEMPLATE);
        let got = resources(&t, &names());
        assert_eq!(
            got,
            [
                "arn:aws:dynamodb:eu-west-1:123456789012:table/requests-1",
                "arn:aws:dynamodb:eu-west-1:123456789012:table/requests-1/index/by_due_date",
                "arn:aws:logs:eu-west-1:123456789012:log-group:t1-Logs:*:*",
                "arn:aws:sqs:eu-west-1:123456789012:Queue.fifo",
                "arn:aws:ses:eu-west-1:123456789012:identity/privacy@example.org",
                "arn:aws:ses:eu-west-1:123456789012:identity/example.org",
                "arn:aws:dynamodb:eu-west-1:123456789012:table/accounts",
                "arn:aws:dynamodb:eu-west-1:123456789012:table/accounts_x/index/by_user",
                "arn:aws:s3:::recordings/recordings/*",
            ]
        );
    }

    #[test]
    fn a_false_condition_leaves_no_value_behind() {
        let t = template(TEMPLATE);
        let got = resources(&t, &names().parameter("Mode", "address"));
        assert!(!got.iter().any(|r| r.ends_with("identity/example.org")), "{got:?}");
        assert_eq!(got.len(), 8);
    }

    #[test]
    fn the_data_maps_sources_carry_their_local_prefix_and_nothing_else_does() {
        let t = template(TEMPLATE);
        let mut n = names();
        n.source_tables = vec!["accounts".into()];
        n.source_buckets = vec!["recordings".into()];
        n.source_prefix = "d1-".into();
        let got = resources(&t, &n);
        assert!(got.contains(&"arn:aws:dynamodb:eu-west-1:123456789012:table/d1-accounts".to_owned()));
        // A table whose name merely starts like a source's is not that source.
        assert!(
            got.contains(
                &"arn:aws:dynamodb:eu-west-1:123456789012:table/accounts_x/index/by_user".to_owned()
            )
        );
        assert!(got.contains(&"arn:aws:s3:::d1-recordings/recordings/*".to_owned()));
        assert!(got.contains(&"arn:aws:dynamodb:eu-west-1:123456789012:table/requests-1".to_owned()));
    }

    #[test]
    fn a_policy_of_its_own_joins_the_roles_it_names_only_where_its_condition_holds() {
        let t = template(
            r#"
Parameters:
  Keys:
    Type: CommaDelimitedList
    Default: ""
Conditions:
  HasKeys: !Not [!Equals [!Join ["", !Ref Keys], ""]]
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
  Other:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
  KeysPolicy:
    Type: AWS::IAM::Policy
    Condition: HasKeys
    Properties:
      PolicyName: keys
      Roles: [!Ref Role]
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: kms:Decrypt
            Resource: !Ref Keys
"#,
        );
        let none = Names::new("eu-west-1", "t1");
        assert!(role_definition(&t, &none, "Role").unwrap().policies.is_empty());
        let given = Names::new("eu-west-1", "t1").parameter("Keys", "arn:k1,arn:k2");
        let role = role_definition(&t, &given, "Role").unwrap();
        assert_eq!(role.policies.len(), 1);
        assert_eq!(role.policies[0].1["Statement"][0]["Resource"], serde_json::json!(["arn:k1", "arn:k2"]));
        assert!(role_definition(&t, &given, "Other").unwrap().policies.is_empty());
    }

    #[test]
    fn every_function_of_the_real_template_has_a_role_that_resolves() {
        let t = Template::load(&crate::template::default_path()).unwrap();
        let n = Names::new("eu-west-1", "t1")
            .parameter("MailFromAddress", "privacy@example.org")
            .parameter("StaffNotificationAddress", "staff@example.org")
            .parameter("AlarmEmailAddress", "alarms@example.org")
            .parameter("PublicBaseUrl", "https://privacy.example.org");
        let roles = t.function_roles().unwrap();
        assert!(roles.len() >= 8, "{roles:?}");
        for f in roles {
            let role = role_definition(&t, &n, &f.role).unwrap_or_else(|e| panic!("{}: {e:#}", f.role));
            assert!(!role.policies.is_empty(), "{} has no policy", f.role);
            assert!(!role.policies[0].1.to_string().contains("${"), "{}: unresolved", f.role);
        }
    }
}
