//! What `index.html` says, layered as the EDPB's guidelines on the right of access (01/2022)
//! ask: first a short summary in plain words (what was found, where, over which period, that
//! other people were pseudonymised and why), then the details place by place, then what
//! Art. 15 also requires (purposes, categories, origins, retention, the recipients by name,
//! CJEU C-154/21), and the person's rights: to rectify, erase, restrict and object, to complain
//! and where, that no automated decisions are made, and how transfers outside the EEA are
//! safeguarded. Every sentence in the person's language, every value formatted.

use chrono::{DateTime, Utc};
use privacy_shared::datamap::{CcpaDisclosure, DataMap, Others, Source, Word};
use privacy_shared::domain::{Language, Regime, RequestRecord};
use serde::Serialize;
use std::collections::BTreeSet;

use crate::readable::{Row, Show, fill};

/// One record as a page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordView {
    pub caption: String,
    pub rows: Vec<Row>,
}

/// One file as a page lists it: linked where it is in this part of the export.
#[derive(Clone, Debug, Serialize)]
pub struct FileView {
    /// Its path in the archive, HTML-escaped.
    pub path: String,
    pub linked: bool,
    pub about: String,
}

/// One source as the index shows it: its first page of records (or its files), how many
/// records it has and how many pages they fill.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub label: String,
    pub description: String,
    pub count: u64,
    pub pages: usize,
    pub records: Vec<RecordView>,
    pub files: Option<Vec<FileView>>,
    /// A source of more than one page: how many the index shows, and that the rest are on the
    /// pages it links.
    pub more: Option<String>,
}

impl Summary {
    fn found(&self) -> u64 {
        match &self.files {
            Some(files) => files.len() as u64,
            None => self.count,
        }
    }
}

/// What the index is made of besides the sources' summaries.
pub struct Facts<'a> {
    pub request: &'a RequestRecord,
    pub map: &'a DataMap,
    pub generated_at: DateTime<Utc>,
    /// CCPA: the period the answer covers.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The oldest and newest record found (by each source's time attribute).
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub parts: Option<u32>,
    /// Whether any other person was pseudonymised.
    pub pseudonymised: bool,
    /// The complaint sentence for the request's regime and country.
    pub complaint: &'a str,
}

#[derive(Serialize)]
struct Place {
    id: String,
    label: String,
    found: String,
}

#[derive(Serialize)]
struct Named {
    name: String,
    role: String,
    kind: String,
    receives: String,
}

#[derive(Serialize)]
struct Kept {
    label: String,
    retention: String,
}

#[derive(Serialize)]
struct CcpaList {
    heading: String,
    categories: Vec<String>,
    recipients: String,
}

/// The index's context: the words, the sentences made of them, and the sources.
pub fn context(show: &Show<'_>, facts: &Facts<'_>, summaries: &[Summary]) -> minijinja::Value {
    let w = show.words;
    let request = facts.request;
    let label_of =
        |id: &str| facts.map.source(id).map_or_else(|| id.to_owned(), |s| s.label(show.language).to_owned());
    let with_data: Vec<&Summary> = summaries.iter().filter(|s| s.found() > 0).collect();
    let records: u64 = with_data.iter().filter(|s| s.files.is_none()).map(|s| s.count).sum();
    let files: u64 = with_data.iter().filter_map(|s| s.files.as_ref()).map(|f| f.len() as u64).sum();
    let email = request.email.as_str();
    let all: Vec<String> = facts.map.sources().iter().map(|s| s.label(show.language).to_owned()).collect();
    let empty: Vec<String> = (facts.map.sources().iter())
        .filter(|s| !with_data.iter().any(|d| d.id == s.id))
        .map(|s| s.label(show.language).to_owned())
        .collect();

    let mut what = Vec::new();
    if records > 0 {
        what.push(show.count(records, &w.words.record));
    }
    if files > 0 {
        what.push(show.count(files, &w.words.file));
    }
    let found = match with_data.is_empty() {
        true => fill(&w.summary.nothing, &[("email", email)]),
        false => fill(&w.summary.found, &[("what", &show.list(&what)), ("email", email)]),
    };
    let looked = match (with_data.is_empty(), empty.is_empty()) {
        (true, _) => Some(fill(&w.summary.looked, &[("names", &show.list(&all))])),
        (false, false) => Some(fill(&w.summary.also_looked, &[("names", &show.list(&empty))])),
        (false, true) => None,
    };
    let places: Vec<Place> = with_data
        .iter()
        .map(|s| Place {
            id: s.id.clone(),
            label: s.label.clone(),
            found: match &s.files {
                Some(files) => show.count(files.len() as u64, &w.words.file),
                None => show.count(s.count, &w.words.record),
            },
        })
        .collect();
    let period = facts.period.map(|(from, to)| {
        fill(&w.summary.period, &[("from", &show.datetime(from)), ("to", &show.datetime(to))])
    });
    let window = facts.window.map(|(from, to)| {
        let basis =
            if request.period_from.is_some() { &w.summary.window_asked } else { &w.summary.window_rule };
        let from = show.date(show.calendar.local_date(from));
        let to = show.date(show.calendar.local_date(to));
        format!("{} {basis}", fill(&w.summary.window, &[("from", &from), ("to", &to)]))
    });
    let others = facts.pseudonymised.then(|| {
        let basis = match request.regime {
            Regime::Gdpr => &w.summary.others_gdpr,
            Regime::Ccpa => &w.summary.others_ccpa,
            Regime::Other => &w.summary.others_other,
        };
        format!("{} {basis}", w.summary.others)
    });
    let city = show.calendar.zone_name().rsplit('/').next().unwrap_or_default().replace('_', " ");
    let intro = fill(
        &w.intro,
        &[
            ("controller", &w.controller),
            ("request", &request.id.to_string()),
            ("compiled", &show.datetime(facts.generated_at)),
        ],
    );
    let parts = facts.parts.map(|n| fill(&w.summary.parts, &[("parts", &show.integer(u64::from(n)))]));

    // What Art. 15 also requires, for the sources that hold the person's data.
    let sources: Vec<&Source> = with_data.iter().filter_map(|s| facts.map.source(&s.id)).collect();
    let words = |of: &dyn Fn(&Source) -> Vec<String>| -> Vec<String> {
        let mut seen = BTreeSet::new();
        sources.iter().flat_map(|s| of(s)).filter(|l| seen.insert(l.clone())).collect()
    };
    let (map, language) = (facts.map, show.language);
    let purposes = words(&|s| labels(map, &s.disclosure.purposes, language));
    let categories = words(&|s| labels(map, &s.disclosure.categories, language));
    let origins = words(&|s| labels(map, &s.disclosure.origins, language));
    let kinds = words(&|s| labels(map, &s.disclosure.recipients, language));
    let retention: Vec<Kept> = sources
        .iter()
        .map(|s| Kept {
            label: s.label(show.language).to_owned(),
            retention: s.retention(show.language).to_owned(),
        })
        .collect();
    let ids: Vec<&str> = sources.iter().map(|s| s.id.as_str()).collect();
    let named: Vec<Named> = facts
        .map
        .recipients_of(&ids)
        .into_iter()
        .map(|r| {
            let receives: Vec<String> =
                r.sources.iter().filter(|s| ids.contains(&s.as_str())).map(|s| label_of(s)).collect();
            Named {
                name: r.name.clone(),
                role: r.role(show.language).to_owned(),
                kind: facts.map.label(r.category, show.language).to_owned(),
                receives: fill(&w.disclosure.receives, &[("sources", &show.list(&receives))]),
            }
        })
        .collect();
    let ccpa = (request.regime == Regime::Ccpa).then(|| {
        [
            (CcpaDisclosure::SoldOrShared, &w.disclosure.ccpa_sold),
            (CcpaDisclosure::BusinessPurpose, &w.disclosure.ccpa_business),
        ]
        .into_iter()
        .map(|(which, heading)| {
            let chosen: Vec<&&Source> =
                sources.iter().filter(|s| s.disclosure.ccpa_disclosure == which).collect();
            let mut seen = BTreeSet::new();
            let categories: Vec<String> = chosen
                .iter()
                .flat_map(|s| s.disclosure.ccpa_categories.iter())
                .filter(|c| seen.insert(**c))
                .map(|c| facts.map.label(*c, show.language).to_owned())
                .collect();
            let mut seen = BTreeSet::new();
            let recipients: Vec<String> = chosen
                .iter()
                .flat_map(|s| s.disclosure.recipients.iter())
                .filter(|r| seen.insert(**r))
                .map(|r| facts.map.label(*r, show.language).to_owned())
                .collect();
            CcpaList {
                heading: heading.clone(),
                categories,
                recipients: fill(&w.disclosure.ccpa_to, &[("recipients", &show.list(&recipients))]),
            }
        })
        .collect::<Vec<_>>()
    });
    let rights = match request.regime {
        Regime::Ccpa => &w.rights.ccpa,
        Regime::Gdpr | Regime::Other => &w.rights.gdpr,
    };
    let contact = w.contact.as_str();
    minijinja::context! {
        lang => show.language.as_str(),
        w => minijinja::Value::from_serialize(w),
        intro => intro,
        nothing => with_data.is_empty(),
        found => found,
        looked => looked,
        places => minijinja::Value::from_serialize(&places),
        period => period,
        window => window,
        others => others,
        zone => fill(&w.summary.zone, &[("city", &city)]),
        parts => parts,
        sources => minijinja::Value::from_serialize(&with_data),
        purposes => purposes,
        categories => categories,
        origins => origins,
        retention => minijinja::Value::from_serialize(&retention),
        named => minijinja::Value::from_serialize(&named),
        kinds => kinds,
        ccpa => minijinja::Value::from_serialize(&ccpa),
        rights => rights,
        ccpa_equal => (request.regime == Regime::Ccpa).then(|| w.rights.ccpa_equal.clone()),
        how => fill(&w.rights.how, &[("contact", contact)]),
        complaint => facts.complaint,
        transfers => fill(&w.rights.transfers_text, &[("contact", contact)]),
        controller => fill(
            &w.rights.controller_text,
            &[("controller", &w.controller), ("address", &w.controller_address), ("contact", contact)],
        ),
    }
}

fn labels<W: Word>(map: &DataMap, items: &[W], language: Language) -> Vec<String> {
    items.iter().map(|i| map.label(*i, language).to_owned()).collect()
}

/// The attributes of `sources` whose other people are pseudonymised, as `source.attribute`
/// (`job_applications.references.name`): what `data.json`'s disclosure names.
pub fn pseudonymised_attributes(sources: &[&Source]) -> Vec<String> {
    fn walk(attributes: &[privacy_shared::datamap::Attribute], path: &str, out: &mut Vec<String>) {
        for attribute in attributes {
            let at = format!("{path}.{}", attribute.name);
            if attribute.others == Others::Pseudonymise {
                out.push(at);
            } else {
                walk(&attribute.fields, &at, out);
            }
        }
    }
    let mut out = Vec::new();
    for source in sources {
        walk(source.attributes(), &source.id, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readable::{Pseudonyms, Words, pseudonymise};
    use privacy_shared::domain::{BusinessCalendar, EmailAddress, Region, RequestId, RequestKind};
    use serde_json::json;

    fn request(region: &str, language: Language) -> RequestRecord {
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z").unwrap().with_timezone(&Utc);
        let region = Region::parse(region).unwrap();
        let deadlines = calendar.deadlines(region.regime(), at);
        let email = EmailAddress::parse("alice@example.com").unwrap();
        RequestRecord::received(
            RequestId::generate(),
            RequestKind::Access,
            region,
            language,
            email,
            at,
            deadlines,
        )
    }

    /// The index as the export renders it, for `records` of the call source.
    fn index(language: Language, region: &str, records: &[serde_json::Value]) -> String {
        let map = DataMap::builtin().unwrap();
        let calendar = BusinessCalendar::parse("Europe/Amsterdam", "").unwrap();
        let show = Show { language, calendar: &calendar, words: Words::of(language).unwrap() };
        let request = request(region, language);
        let calls = map.source("call_detail_records").unwrap();
        let mut people = Pseudonyms::new(["u-alice".to_owned()]);
        let rows: Vec<RecordView> = records
            .iter()
            .map(|record| {
                let mut record = record.clone();
                pseudonymise(calls, &mut record, &mut people, &|p| match p {
                    crate::readable::Person::Other(n) => Some(show.pseudonym(n)),
                    crate::readable::Person::Own(id) => Some(show.own(id)),
                });
                RecordView { caption: "c".into(), rows: show.rows(calls, &record) }
            })
            .collect();
        let summaries = vec![Summary {
            id: calls.id.clone(),
            label: calls.label(language).to_owned(),
            description: calls.describe(language).to_owned(),
            count: rows.len() as u64,
            pages: 1,
            records: rows,
            files: None,
            more: None,
        }];
        let complaint = privacy_shared::mail::templates::complaint(&request);
        let facts = Facts {
            request: &request,
            map: &map,
            generated_at: request.received_at,
            window: None,
            period: None,
            parts: None,
            pseudonymised: people.people() > 0,
            complaint,
        };
        crate::templates()
            .unwrap()
            .get_template("index.html")
            .unwrap()
            .render(context(&show, &facts, &summaries))
            .unwrap()
    }

    #[test]
    fn the_overview_leads_with_what_was_found_and_ends_with_the_rights_in_the_persons_language() {
        let call = json!({"call_id": "c-1", "user_id": "u-alice", "started_at": "2026-10-02T09:00:00Z",
            "duration_seconds": 600, "participants": ["u-alice", "u-bob"], "network": "wifi"});
        let nl = index(Language::Nl, "NL", std::slice::from_ref(&call));
        let at = |page: &str, text: &str| page.find(text).unwrap_or_else(|| panic!("{text:?} in {page}"));
        assert!(
            at(&nl, "In het kort") < at(&nl, "Gesprekken") && at(&nl, "Gesprekken") < at(&nl, "Uw rechten")
        );
        for said in [
            "Wij hebben 1 vermelding gevonden die aan alice@example.com gekoppeld zijn.",
            "2 oktober 2026 om 11:00",
            "10 minuten",
            "deelnemer 2",
            "u-alice (uzelf)",
            "Wifi",
            "Nimbus Hosting B.V.</strong>: hosting en opslag",
            "25 maanden na elk gesprek.",
            "artikel 15, vierde lid",
            "Autoriteit Persoonsgegevens",
            "modelcontractbepalingen",
        ] {
            assert!(nl.contains(said), "{said:?} in the Dutch overview");
        }
        for raw in ["participants", "duration_seconds", "2026-10-02T", "service_providers", "u-bob"] {
            assert!(!nl.contains(raw), "{raw:?} shown raw in the Dutch overview");
        }
        let en = index(Language::En, "GB", &[call]);
        for said in [
            "Your personal data",
            "We found 1 record linked to alice@example.com.",
            "participant 2",
            "Information Commissioner",
        ] {
            assert!(en.contains(said), "{said:?} in the English overview");
        }
    }

    #[test]
    fn when_nothing_is_found_the_overview_says_so_plainly() {
        let nl = index(Language::Nl, "NL", &[]);
        assert!(nl.contains(
            "Wij hebben geen persoonsgegevens gevonden die aan dit adres (alice@example.com) gekoppeld zijn."
        ));
        assert!(nl.contains(
            "Wij hebben gezocht op elke plek waar wij persoonsgegevens bewaren: Account en profiel, "
        ));
        assert!(
            !nl.contains("Wat wij met uw gegevens doen") && !nl.contains("deelnemer"),
            "nothing to disclose"
        );
        assert!(nl.contains("Uw rechten") && nl.contains("Autoriteit Persoonsgegevens"));
        let en = index(Language::En, "NL", &[]);
        assert!(en.contains("We found no personal data linked to this address (alice@example.com)."));
    }
}
