//! How the export's pages show a person's data to them: every word in their language
//! (`templates/words.<lang>.yaml`, the data map's labels), every value formatted for a reader
//! (dates and times in their language and the business time zone, durations, sizes, yes and no,
//! the words of codes, lists as lists, objects as nested tables), and other people
//! pseudonymised (GDPR Art. 15(4)): "participant 2", the same number for the same person
//! throughout one export, the person's own identifiers never.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use privacy_shared::datamap::{Attribute, Format, Others, Source};
use privacy_shared::domain::{BusinessCalendar, Language};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

const EN: &str = include_str!("../templates/words.en.yaml");
const NL: &str = include_str!("../templates/words.nl.yaml");

/// The pages' own words in one language: every key in both files (read strictly, so a key
/// missing from one fails its test, never a page).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Words {
    pub title: String,
    pub controller: String,
    pub controller_address: String,
    pub contact: String,
    pub intro: String,
    pub summary: SummaryWords,
    pub details: DetailWords,
    pub disclosure: DisclosureWords,
    pub rights: RightsWords,
    pub words: FormatWords,
    pub pages: PageWords,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryWords {
    pub heading: String,
    pub found: String,
    pub nothing: String,
    pub looked: String,
    pub also_looked: String,
    pub caption: String,
    pub place: String,
    pub found_column: String,
    pub period: String,
    pub window: String,
    pub window_asked: String,
    pub window_rule: String,
    pub others: String,
    pub others_gdpr: String,
    pub others_ccpa: String,
    pub others_other: String,
    pub layers: String,
    pub machine: String,
    pub zone: String,
    pub parts: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetailWords {
    pub shown: String,
    pub record: String,
    pub files: String,
    pub file: String,
    pub file_undated: String,
    pub in_part: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureWords {
    pub heading: String,
    pub intro: String,
    pub purposes: String,
    pub categories: String,
    pub origins: String,
    pub retention: String,
    pub recipients: String,
    pub named: String,
    pub receives: String,
    pub kinds: String,
    pub ccpa_sold: String,
    pub ccpa_business: String,
    pub ccpa_to: String,
    pub none: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RightsWords {
    pub heading: String,
    pub intro: String,
    pub gdpr: Vec<String>,
    pub ccpa: Vec<String>,
    pub ccpa_equal: String,
    pub how: String,
    pub complaint: String,
    pub automated: String,
    pub automated_text: String,
    pub transfers: String,
    pub transfers_text: String,
    pub controller: String,
    pub controller_text: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FormatWords {
    pub yes: String,
    pub no: String,
    pub none: String,
    pub not_given: String,
    pub you: String,
    pub participant: String,
    pub at: String,
    pub and: String,
    pub record: [String; 2],
    pub file: [String; 2],
    pub hour: [String; 2],
    pub minute: [String; 2],
    pub second: [String; 2],
    pub months: [String; 12],
    pub decimal: String,
    pub thousands: String,
    pub kilobytes: String,
    pub megabytes: String,
    pub gigabytes: String,
    pub bytes: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PageWords {
    pub heading: String,
    pub back: String,
    pub previous: String,
    pub next: String,
    pub navigation: String,
}

/// The words files did not read (a broken build: the tests read both).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the export's words for `{language}` do not read: {problem}")]
pub struct WordsError {
    language: &'static str,
    problem: String,
}

impl Words {
    /// The words in `language`, read once.
    pub fn of(language: Language) -> Result<&'static Words, WordsError> {
        static READ: OnceLock<[Result<Words, WordsError>; 2]> = OnceLock::new();
        let read = READ.get_or_init(|| {
            let parse = |language: &'static str, text: &str| {
                serde_norway::from_str::<Words>(text)
                    .map_err(|err| WordsError { language, problem: err.to_string() })
            };
            [parse("en", EN), parse("nl", NL)]
        });
        match language {
            Language::En => read[0].as_ref(),
            Language::Nl => read[1].as_ref(),
        }
        .map_err(Clone::clone)
    }
}

/// `template` with each `{name}` replaced by its value.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(template.to_owned(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
}

/// Escapes what is special in HTML text and attribute values (the mail's escaping, one rule).
pub fn escape(text: &str) -> String {
    privacy_shared::mail::templates::escape_attribute(text)
}

/// One row of a record as a page shows it: the attribute's label, the value as HTML.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub label: String,
    pub html: String,
}

/// How values are told in one language and time zone.
pub struct Show<'a> {
    pub language: Language,
    pub calendar: &'a BusinessCalendar,
    pub words: &'a Words,
}

impl Show<'_> {
    fn w(&self) -> &FormatWords {
        &self.words.words
    }

    /// A whole number with the language's thousands separator (`12.345` in Dutch).
    pub fn integer(&self, n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push_str(&self.w().thousands);
            }
            out.push(digit);
        }
        out
    }

    /// A number as the language writes it: thousands grouped, a decimal comma in Dutch, at most
    /// two decimals.
    pub fn number(&self, n: f64) -> String {
        if !n.is_finite() {
            return n.to_string();
        }
        let negative = n < 0.0;
        let rounded = (n.abs() * 100.0).round() / 100.0;
        let whole = rounded.trunc() as u64;
        let mut out = if negative { "-".to_owned() } else { String::new() };
        out.push_str(&self.integer(whole));
        let fraction = format!("{:.2}", rounded.fract());
        let decimals = fraction.trim_start_matches('0').trim_start_matches('.').trim_end_matches('0');
        if !decimals.is_empty() {
            out.push_str(&self.w().decimal);
            out.push_str(decimals);
        }
        out
    }

    /// `3 records`, `1 vermelding`.
    pub fn count(&self, n: u64, unit: &[String; 2]) -> String {
        format!("{} {}", self.integer(n), if n == 1 { &unit[0] } else { &unit[1] })
    }

    /// `a, b and c`.
    pub fn list(&self, items: &[String]) -> String {
        match items {
            [] => self.w().none.clone(),
            [one] => one.clone(),
            [rest @ .., last] => format!("{} {} {last}", rest.join(", "), self.w().and),
        }
    }

    /// `2 October 2026`, `2 oktober 2026`.
    pub fn date(&self, day: NaiveDate) -> String {
        format!("{} {} {}", day.day(), self.w().months[day.month0() as usize], day.year())
    }

    /// The moment on the business time zone's clock: `2 October 2026 at 11:00`.
    pub fn datetime(&self, at: DateTime<Utc>) -> String {
        let local = self.calendar.local_datetime(at);
        format!("{} {} {:02}:{:02}", self.date(local.date()), self.w().at, local.hour(), local.minute())
    }

    /// `30 minutes and 20 seconds`, `1 uur en 5 minuten`.
    pub fn duration(&self, seconds: u64) -> String {
        let w = self.w();
        let parts: Vec<String> =
            [(seconds / 3600, &w.hour), ((seconds % 3600) / 60, &w.minute), (seconds % 60, &w.second)]
                .into_iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, unit)| self.count(n, unit))
                .collect();
        if parts.is_empty() { self.count(0, &w.second) } else { self.list(&parts) }
    }

    /// `64 KB`, `8,8 kB`, `512 bytes`.
    pub fn bytes(&self, n: u64) -> String {
        let w = self.w();
        let units = [(1u64 << 30, &w.gigabytes), (1 << 20, &w.megabytes), (1 << 10, &w.kilobytes)];
        match units.into_iter().find(|(size, _)| n >= *size) {
            Some((size, unit)) => format!("{} {unit}", self.number(n as f64 / size as f64)),
            None => format!("{} {}", self.integer(n), w.bytes),
        }
    }

    /// A scalar's words: a date or time in ISO 8601 as a date or time whatever the hint; the
    /// words of a code the map knows; a number as the hint says.
    fn scalar(&self, attribute: Option<&Attribute>, value: &Value) -> String {
        let format = attribute.and_then(|a| a.format);
        match value {
            Value::Null => self.w().not_given.clone(),
            Value::Bool(true) => self.w().yes.clone(),
            Value::Bool(false) => self.w().no.clone(),
            Value::Number(n) => {
                let (whole, real) = (n.as_u64(), n.as_f64().unwrap_or_default());
                match (format, whole) {
                    (Some(Format::DurationSeconds), Some(seconds)) => self.duration(seconds),
                    (Some(Format::Bytes), Some(size)) => self.bytes(size),
                    (Some(Format::Milliseconds), _) => format!("{} ms", self.number(real)),
                    (Some(Format::Percent), _) => format!("{}%", self.number(real)),
                    (Some(Format::DateTime), Some(epoch)) => i64::try_from(epoch)
                        .ok()
                        .and_then(|s| DateTime::from_timestamp(s, 0))
                        .map_or_else(|| self.number(real), |at| self.datetime(at)),
                    _ => match whole {
                        Some(whole) => self.integer(whole),
                        None => self.number(real),
                    },
                }
            }
            Value::String(text) => {
                if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                    return self.datetime(at.with_timezone(&Utc));
                }
                if text.len() == 10
                    && let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                {
                    return self.date(day);
                }
                match attribute.and_then(|a| a.value_label(text, self.language)) {
                    Some(words) => words.to_owned(),
                    None => text.clone(),
                }
            }
            // Lists and objects are shown by `value_html`.
            Value::Array(_) | Value::Object(_) => String::new(),
        }
    }

    /// A value as HTML: a scalar as its words, a list as a list, an object as a nested table
    /// with the labels of its fields.
    pub fn value_html(&self, attribute: Option<&Attribute>, value: &Value) -> String {
        match value {
            Value::Array(items) if items.is_empty() => escape(&self.w().none),
            Value::Array(items) => {
                let shown: String = items
                    .iter()
                    .map(|item| format!("<li>{}</li>", self.value_html(attribute, item)))
                    .collect();
                format!("<ul>{shown}</ul>")
            }
            Value::Object(fields) if fields.is_empty() => escape(&self.w().none),
            Value::Object(fields) => {
                let fields_of = attribute.map_or(&[][..], |a| a.fields.as_slice());
                let rows: String = ordered(fields_of, fields)
                    .into_iter()
                    .map(|(name, field, value)| {
                        format!(
                            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
                            escape(&label(field, name, self.language)),
                            self.value_html(field, value)
                        )
                    })
                    .collect();
                format!("<table class=\"nested\"><tbody>{rows}</tbody></table>")
            }
            scalar => escape(&self.scalar(attribute, scalar)).replace('\n', "<br>"),
        }
    }

    /// A record's rows: the attributes the map describes in its order, then any others.
    pub fn rows(&self, source: &Source, record: &Value) -> Vec<Row> {
        let Some(fields) = record.as_object() else {
            return vec![Row { label: String::new(), html: self.value_html(None, record) }];
        };
        let mut described: Vec<&Attribute> = source.attributes().iter().collect();
        let written: Vec<&Attribute> =
            fields.keys().filter_map(|k| source.attribute(k)).filter(|a| !described.contains(a)).collect();
        described.extend(written);
        ordered_refs(&described, fields)
            .into_iter()
            .map(|(name, attribute, value)| Row {
                label: label(attribute, name, self.language),
                html: self.value_html(attribute, value),
            })
            .collect()
    }

    /// How a pseudonym reads on the page.
    pub fn pseudonym(&self, number: u32) -> String {
        format!("{} {number}", self.w().participant)
    }

    /// How the person's own identifier reads where it stands among other people's.
    pub fn own(&self, identifier: &str) -> String {
        format!("{identifier} ({})", self.w().you)
    }
}

/// An attribute's label, or, for one the map does not describe (a webhook may answer more than
/// the map knows), its name made readable.
fn label(attribute: Option<&Attribute>, name: &str, language: Language) -> String {
    match attribute {
        Some(attribute) => attribute.label(language).to_owned(),
        None => {
            let spaced = name.replace('_', " ");
            let mut chars = spaced.chars();
            chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
        }
    }
}

/// An object's fields in the order of the attributes that describe them, then the rest by name.
fn ordered<'a>(
    attributes: &'a [Attribute],
    fields: &'a serde_json::Map<String, Value>,
) -> Vec<(&'a str, Option<&'a Attribute>, &'a Value)> {
    let refs: Vec<&Attribute> = attributes.iter().collect();
    ordered_refs(&refs, fields)
}

fn ordered_refs<'a>(
    attributes: &[&'a Attribute],
    fields: &'a serde_json::Map<String, Value>,
) -> Vec<(&'a str, Option<&'a Attribute>, &'a Value)> {
    let mut out: Vec<(&str, Option<&Attribute>, &Value)> = attributes
        .iter()
        .filter_map(|a| fields.get_key_value(&a.name).map(|(name, value)| (name.as_str(), Some(*a), value)))
        .collect();
    let mut rest: Vec<(&str, Option<&Attribute>, &Value)> = fields
        .iter()
        .filter(|(name, _)| !attributes.iter().any(|a| &a.name == *name))
        .map(|(name, value)| (name.as_str(), None, value))
        .collect();
    rest.sort_by_key(|(name, _, _)| *name);
    out.extend(rest);
    out
}

/// The other people of one export, each numbered once (from 2: the person is the first of
/// every conversation), and the person's own identifiers, never numbered. Identifiers are
/// compared without case or surrounding space, so an address is one person however written.
#[derive(Debug, Default)]
pub struct Pseudonyms {
    own: HashSet<String>,
    numbers: HashMap<String, u32>,
}

/// What an identifier among other people's is replaced by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Person<'a> {
    /// Another person: their number in this export.
    Other(u32),
    /// The person themselves, as written.
    Own(&'a str),
}

impl Pseudonyms {
    pub fn new(own: impl IntoIterator<Item = String>) -> Pseudonyms {
        let own = own.into_iter().map(|o| key(&o)).filter(|o| !o.is_empty()).collect();
        Pseudonyms { own, numbers: HashMap::new() }
    }

    /// `identifier`'s number, the next one if it has none yet; none for the person's own.
    pub fn number(&mut self, identifier: &str) -> Option<u32> {
        let key = key(identifier);
        if self.own.contains(&key) {
            return None;
        }
        let next = self.numbers.len() as u32 + 2;
        Some(*self.numbers.entry(key).or_insert(next))
    }

    /// How many other people were numbered.
    pub fn people(&self) -> usize {
        self.numbers.len()
    }
}

fn key(identifier: &str) -> String {
    identifier.trim().to_lowercase()
}

/// Replaces, in `record`, every identifier in an attribute the map marks as holding other
/// people's (`others`, and everything below it, unless a field is `shareable`) by what `spell`
/// gives for it; `spell` returning none keeps the value. Returns how many were replaced.
pub fn pseudonymise(
    source: &Source,
    record: &mut Value,
    people: &mut Pseudonyms,
    spell: &dyn Fn(Person<'_>) -> Option<String>,
) -> usize {
    let Some(fields) = record.as_object_mut() else { return 0 };
    let mut replaced = 0;
    for (name, value) in fields.iter_mut() {
        replaced += visit(value, source.attribute(name), false, people, spell);
    }
    replaced
}

fn visit(
    value: &mut Value,
    attribute: Option<&Attribute>,
    inherited: bool,
    people: &mut Pseudonyms,
    spell: &dyn Fn(Person<'_>) -> Option<String>,
) -> usize {
    let others = match attribute.map(|a| a.others) {
        Some(Others::Pseudonymise) => true,
        Some(Others::Share) => false,
        Some(Others::None) | None => inherited,
    };
    match value {
        Value::Array(items) => {
            items.iter_mut().map(|item| visit(item, attribute, others, people, spell)).sum()
        }
        Value::Object(fields) => fields
            .iter_mut()
            .map(|(name, field)| visit(field, attribute.and_then(|a| a.field(name)), others, people, spell))
            .sum(),
        Value::Null => 0,
        scalar if others => {
            let identifier = match &*scalar {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let spelled = match people.number(&identifier) {
                Some(number) => spell(Person::Other(number)),
                None => spell(Person::Own(&identifier)),
            };
            match spelled {
                Some(text) => {
                    *scalar = Value::String(text);
                    1
                }
                None => 0,
            }
        }
        _ => 0,
    }
}

/// How `data.json` spells another person: a token that reads the same in every language.
pub fn data_pseudonym(person: Person<'_>) -> Option<String> {
    match person {
        Person::Other(number) => Some(format!("participant-{number}")),
        Person::Own(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privacy_shared::datamap::DataMap;
    use serde_json::json;

    fn show(language: Language) -> Show<'static> {
        static CALENDAR: OnceLock<BusinessCalendar> = OnceLock::new();
        let calendar = CALENDAR.get_or_init(|| BusinessCalendar::parse("Europe/Amsterdam", "").unwrap());
        Show { language, calendar, words: Words::of(language).unwrap() }
    }

    #[test]
    fn both_languages_have_every_word() {
        for language in [Language::En, Language::Nl] {
            let words = Words::of(language).unwrap();
            let tree = serde_json::to_value(words).unwrap();
            fn blank(value: &Value, path: &str, out: &mut Vec<String>) {
                match value {
                    Value::String(s) if s.trim().is_empty() => out.push(path.to_owned()),
                    Value::Array(items) => {
                        items.iter().enumerate().for_each(|(i, v)| blank(v, &format!("{path}[{i}]"), out))
                    }
                    Value::Object(m) => m.iter().for_each(|(k, v)| blank(v, &format!("{path}.{k}"), out)),
                    _ => {}
                }
            }
            let mut empty = Vec::new();
            blank(&tree, "", &mut empty);
            assert!(empty.is_empty(), "{language:?}: {empty:?}");
        }
        assert_eq!(
            Words::of(Language::En).unwrap().rights.gdpr.len(),
            Words::of(Language::Nl).unwrap().rights.gdpr.len()
        );
    }

    #[test]
    fn dates_and_times_are_told_in_the_language_on_the_business_zones_clock() {
        let at = DateTime::parse_from_rfc3339("2026-10-02T09:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(show(Language::Nl).datetime(at), "2 oktober 2026 om 11:00");
        assert_eq!(show(Language::En).datetime(at), "2 October 2026 at 11:00");
        let winter = DateTime::parse_from_rfc3339("2026-12-31T23:30:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(
            show(Language::Nl).datetime(winter),
            "1 januari 2027 om 00:30",
            "the next day in Amsterdam"
        );
        let date = show(Language::Nl).scalar(None, &json!("2012-05-01"));
        assert_eq!(date, "1 mei 2012", "a date in ISO 8601, whatever the attribute");
        assert_eq!(
            show(Language::En).scalar(None, &json!("2026-10-02T09:05:00+00:00")),
            "2 October 2026 at 11:05"
        );
    }

    #[test]
    fn numbers_durations_and_sizes_read_as_the_language_writes_them() {
        let (nl, en) = (show(Language::Nl), show(Language::En));
        assert_eq!((nl.integer(1234567), en.integer(1234567)), ("1.234.567".into(), "1,234,567".into()));
        assert_eq!((nl.number(0.4), en.number(2.125)), ("0,4".into(), "2.13".into()));
        assert_eq!(nl.number(12.0), "12");
        assert_eq!(en.duration(1820), "30 minutes and 20 seconds");
        assert_eq!(nl.duration(3600), "1 uur");
        assert_eq!(nl.duration(3905), "1 uur, 5 minuten en 5 seconden");
        assert_eq!(en.duration(0), "0 seconds");
        assert_eq!(en.bytes(65536), "64 KB");
        assert_eq!(nl.bytes(9000), "8,79 kB");
        assert_eq!(nl.bytes(512), "512 bytes");
        assert_eq!(en.bytes(5 << 30), "5 GB");
        assert_eq!(nl.count(1, &nl.words.words.record), "1 vermelding");
        assert_eq!(en.list(&["a".into(), "b".into(), "c".into()]), "a, b and c");
    }

    #[test]
    fn a_record_reads_with_labels_formatted_values_lists_and_nested_tables() {
        let map = DataMap::builtin().unwrap();
        let cdrs = map.source("call_detail_records").unwrap();
        let record = json!({
            "call_id": "c-1", "user_id": "u-alice", "started_at": "2026-10-02T09:00:00Z",
            "duration_seconds": 1820, "participants": ["u-alice", "u-bob"],
            "actions": ["share_screen", "mute", "something_new"],
            "quality": {"packet_loss_pct": 0.4, "jitter_ms": 12}, "network": "4g",
            "extra_field": true,
        });
        let rows = show(Language::Nl).rows(cdrs, &record);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "Gespreks-ID",
                "Gebruikers-ID",
                "Begonnen op",
                "Duur",
                "Deelnemers",
                "Wat er in het gesprek werd gedaan",
                "Kwaliteit van de verbinding",
                "Netwerk",
                "Extra field"
            ],
            "the map's order, then what it does not describe, readable"
        );
        let html = |label: &str| rows.iter().find(|r| r.label == label).unwrap().html.clone();
        assert_eq!(html("Begonnen op"), "2 oktober 2026 om 11:00");
        assert_eq!(html("Duur"), "30 minuten en 20 seconden");
        assert_eq!(
            html("Wat er in het gesprek werd gedaan"),
            "<ul><li>Scherm gedeeld</li><li>Microfoon gedempt</li><li>something_new</li></ul>"
        );
        assert_eq!(
            html("Kwaliteit van de verbinding"),
            "<table class=\"nested\"><tbody><tr><th scope=\"row\">Gegevens onderweg verloren (pakketverlies)</th><td>0,4%</td></tr><tr><th scope=\"row\">Schommeling in vertraging (jitter)</th><td>12 ms</td></tr></tbody></table>"
        );
        assert_eq!(html("Netwerk"), "Mobiel netwerk (4G)");
        assert_eq!(html("Extra field"), "Ja");
        let empty = show(Language::En).value_html(None, &json!({}));
        assert_eq!(empty, "none");
        assert_eq!(
            show(Language::En).value_html(None, &json!("<b>hi</b>\nthere")),
            "&lt;b&gt;hi&lt;/b&gt;<br>there"
        );
    }

    #[test]
    fn other_people_get_one_number_each_throughout_and_the_person_none() {
        let map = DataMap::builtin().unwrap();
        let mut people = Pseudonyms::new(["alice@example.com".to_owned(), "u-alice".to_owned()]);
        let call = map.source("call_detail_records").unwrap();
        let chat = map.source("chat_transcripts").unwrap();
        let applications = map.source("job_applications").unwrap();
        let accounts = map.source("accounts").unwrap();
        let mut a =
            json!({"user_id": "u-alice", "participants": ["u-alice", "u-bob", "u-carol"], "call_id": "c-1"});
        let mut b = json!({"user_id": "u-alice", "recipients": ["U-Bob "], "read_by": ["u-dave"], "content": "Hi u-bob"});
        let mut c = json!({"references": [{"name": "Sam de Boer", "relation": "colleague"}], "email": "alice@example.com"});
        let mut d = json!({"administrator_contact": "it-admin@acme.example", "email": "alice@example.com"});
        assert_eq!(pseudonymise(call, &mut a, &mut people, &data_pseudonym), 2);
        assert_eq!(pseudonymise(chat, &mut b, &mut people, &data_pseudonym), 2);
        assert_eq!(pseudonymise(applications, &mut c, &mut people, &data_pseudonym), 1);
        assert_eq!(pseudonymise(accounts, &mut d, &mut people, &data_pseudonym), 0, "shareable, and own");
        assert_eq!(a["participants"], json!(["u-alice", "participant-2", "participant-3"]));
        assert_eq!(a["user_id"], "u-alice", "the person's own id stays");
        assert_eq!(
            b["recipients"],
            json!(["participant-2"]),
            "the same person, the same number, in any source"
        );
        assert_eq!(b["read_by"], json!(["participant-4"]));
        assert_eq!(b["content"], "Hi u-bob", "the person's own words are theirs, in full");
        assert_eq!(c["references"], json!([{"name": "participant-5", "relation": "colleague"}]));
        assert_eq!(d["administrator_contact"], "it-admin@acme.example");
        assert_eq!(people.people(), 4);

        // The page spells them in the person's language, and marks the person among others.
        let nl = show(Language::Nl);
        let spell = |person: Person<'_>| match person {
            Person::Other(n) => Some(nl.pseudonym(n)),
            Person::Own(id) => Some(nl.own(id)),
        };
        let mut page = json!({"participants": ["u-alice", "u-carol", "u-erin"]});
        pseudonymise(call, &mut page, &mut people, &spell);
        assert_eq!(page["participants"], json!(["u-alice (uzelf)", "deelnemer 3", "deelnemer 6"]));
    }
}
