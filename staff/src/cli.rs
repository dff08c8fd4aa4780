//! The command line: what a staff member types, checked locally so that mistakes get a clear
//! message before anything is sent. The server remains the authority on every rule.

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use uuid::Uuid;

/// The privacy staff's client for the staff API: list and inspect privacy requests, enter one a
/// person made by phone, post, email, chat or in person, extend their deadline, deny them, mark
/// them excessive or complete them, and answer the data map's manual sources (attach what one
/// holds of the person, confirm what was erased in it). And what follows by hand: confirm
/// receipt, restart the work when a fee is accepted, record a disputed correction and announce
/// the lift of its restriction.
///
/// Reasons, notes and statements you write reach the requester verbatim, in the language of
/// their request: `staff show ID` names it. Write them in that language.
///
/// Deployed, requests are signed with your AWS credentials (the standard chain: environment,
/// profiles, SSO). Against the local dev stack pass --local-key instead.
// No Debug derive: the parsed command line holds the local key, which must never be printed.
#[derive(Parser)]
#[command(name = "staff", version)]
pub struct Cli {
    /// Base URL of the staff API, including the stage path if it has one.
    #[arg(long, env = "STAFF_API_URL", value_name = "URL")]
    pub endpoint: String,

    /// AWS region to sign for [default: the region of your AWS profile].
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// Key of the local dev stack: sent as `x-staff-key` instead of signing with AWS credentials.
    #[arg(long, env = "STAFF_LOCAL_KEY", value_name = "KEY", hide_env_values = true)]
    pub local_key: Option<String>,

    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// List open requests.
    List(ListArgs),
    /// Show one request and its audit trail.
    Show {
        /// The request's id (a UUID).
        #[arg(value_parser = parse_id)]
        id: Uuid,
    },
    /// Extend a request's deadline (once, within the legal maximum).
    Extend {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// The new due date, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date, value_name = "DATE")]
        until: NaiveDate,
        /// Why more time is needed. The requester reads it verbatim: write it in the request's
        /// language (`staff show ID` names it).
        #[arg(long, value_parser = parse_text, value_name = "TEXT")]
        reason: String,
    },
    /// Deny a request.
    Deny {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// Why the request is denied. The requester reads it verbatim: write it in the request's
        /// language (`staff show ID` names it).
        #[arg(long, value_parser = parse_text, value_name = "TEXT")]
        reason: String,
        /// The legal basis of the denial, as the records of requests keep it (the reason is
        /// free text for the requester) [server default: other].
        #[arg(long)]
        basis: Option<DenialBasis>,
    },
    /// Mark a request manifestly unfounded or excessive, with the fee it would cost.
    Excessive {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// Why the request is excessive. The requester reads it verbatim: write it in the
        /// request's language (`staff show ID` names it).
        #[arg(long, value_parser = parse_text, value_name = "TEXT")]
        reason: String,
        /// The cost estimate, with exactly two decimals, e.g. 25.00.
        #[arg(long, value_parser = parse_amount)]
        amount: String,
        /// ISO 4217 currency code, e.g. EUR.
        #[arg(long, value_parser = parse_currency)]
        currency: String,
    },
    /// Complete a request that staff fulfil by hand.
    Complete {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// A note for the requester, kept in the audit trail. The requester reads it verbatim:
        /// write it in the request's language (`staff show ID` names it).
        #[arg(long, value_parser = parse_text, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Confirm receipt to the requester (CCPA regulations §7021(b)): a mail in the request's
    /// language saying when it was received, how it will be verified and handled, and by when it
    /// will be answered. For the digest's "acknowledgement due" list; sent once per request, and
    /// the request then leaves that list.
    ConfirmReceipt {
        #[arg(value_parser = parse_id)]
        id: Uuid,
    },
    /// The person accepted, by reply, the fee of a request marked excessive: the work restarts,
    /// due a fresh legal period (GDPR one month, CCPA 45 days) from the day they accepted, and
    /// the person is told the fee and the new due date.
    AcceptFee {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// The day their acceptance reached us, YYYY-MM-DD [default: today].
        #[arg(long, value_parser = parse_date, value_name = "DATE")]
        accepted_on: Option<NaiveDate>,
    },
    /// After a refused correction, the person disputes the accuracy of their data (by reply):
    /// record it (CCPA regulations §7023(f)). The disputed data is restricted while it is
    /// disputed (GDPR Art. 18(1)(a)), its recipients are told to restrict it too, and the person
    /// is told. Lift the restriction with `lift-restriction`.
    RecordDispute {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// The person's statement, as they want it noted: it goes verbatim to the person and to
        /// the recipients of the data.
        #[arg(long, value_parser = parse_text, value_name = "TEXT")]
        statement: Option<String>,
    },
    /// Announce that the restriction of disputed data is lifted on DATE, and why. The person is
    /// told now, before it is lifted (GDPR Art. 18(3)); the restriction holds until that day.
    LiftRestriction {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// Why it is lifted. The requester reads it verbatim: write it in the request's language
        /// (`staff show ID` names it).
        #[arg(long, value_parser = parse_text, value_name = "TEXT")]
        reason: String,
        /// The day it is lifted, YYYY-MM-DD: after today, so the person hears of it first.
        #[arg(long, value_parser = parse_date, value_name = "DATE")]
        on: NaiveDate,
    },
    /// Enter a request a person made by phone, post, email, chat or in person. It goes the way
    /// of one made online: the person gets the verification email, and nothing happens until
    /// they confirm from their mailbox (an opt-out or unsubscribe is honoured at once).
    Submit(SubmitArgs),
    /// The yearly figures of the records of requests (CCPA regulations §7102), per kind and
    /// regime: received, complied with in whole or in part, denied by basis, not verified,
    /// referred, open, and the mean and median days to respond; or, with --csv, the records.
    Report(ReportArgs),
    /// Answer a manual source's access task: upload the files it holds of the person for the
    /// export, or say it holds nothing (`show` lists the request's tasks and what to do).
    Attach(AttachArgs),
    /// Answer a manual source's erasure task: what was deleted and anonymised by hand.
    ConfirmErasure {
        #[arg(value_parser = parse_id)]
        id: Uuid,
        /// The manual source, by its id in the data map (e.g. website_analytics).
        #[arg(long, value_parser = parse_source, value_name = "SOURCE")]
        source: String,
        /// How many of the person's records were deleted.
        #[arg(long, value_name = "N")]
        deleted: u32,
        /// How many were anonymised and kept (then say why with --kept-reason).
        #[arg(long, value_name = "N", requires = "kept_reason")]
        anonymised: Option<u32>,
        /// Why the anonymised records were kept; the requester is told.
        #[arg(long, value_parser = parse_text, value_name = "TEXT", requires = "anonymised")]
        kept_reason: Option<String>,
    },
    /// After a backup was restored: apply again every erasure completed since the moment the
    /// backup was taken from, wait for it and print the receipt (infra/README.md, "Restoring a
    /// backup").
    ReplayErasures(crate::replay::ReplayArgs),
}

/// `submit`: a request a person made by another channel than the privacy center.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct SubmitArgs {
    /// How the request reached you.
    #[arg(long)]
    pub channel: Channel,
    /// The person's email address: the verification email goes there.
    #[arg(long, value_parser = parse_text, value_name = "ADDRESS")]
    pub email: String,
    /// What the person asks for: access, portability, rectification, deletion, restriction,
    /// objection, withdraw_consent, opt_out_of_sale or unsubscribe.
    #[arg(long, value_parser = parse_text, value_name = "KIND")]
    pub kind: String,
    /// Where the person lives: an ISO 3166-1 alpha-2 country code, or US-CA.
    #[arg(long, value_parser = parse_text, value_name = "REGION")]
    pub region: String,
    /// The language of the person's mail, en or nl [default: nl for NL, en elsewhere].
    #[arg(long, value_parser = parse_text, value_name = "LANG")]
    pub language: Option<String>,
    /// The person's name, as they gave it.
    #[arg(long, value_parser = parse_text, value_name = "TEXT")]
    pub name: Option<String>,
    /// What the person said about the request, on one line.
    #[arg(long, value_parser = parse_text, value_name = "TEXT")]
    pub details: Option<String>,
}

/// The channels staff take requests by (a request made online the person makes themselves).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum Channel {
    Phone,
    Post,
    Email,
    Chat,
    InPerson,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Phone => "phone",
            Channel::Post => "post",
            Channel::Email => "email",
            Channel::Chat => "chat",
            Channel::InPerson => "in_person",
        }
    }
}

/// The coded bases of a denial (the staff API's `basis`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum DenialBasis {
    /// A legal exemption applies.
    Exemption,
    /// The law requires keeping or processing the data.
    LegalObligation,
    /// Needed to establish, exercise or defend legal claims.
    LegalClaims,
    /// Answering would adversely affect the rights of others.
    RightsOfOthers,
    /// The requester, or an agent's authority, could not be verified.
    Unverifiable,
    /// The person's data was erased at their own request meanwhile.
    Erased,
    Other,
}

impl DenialBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            DenialBasis::Exemption => "exemption",
            DenialBasis::LegalObligation => "legal_obligation",
            DenialBasis::LegalClaims => "legal_claims",
            DenialBasis::RightsOfOthers => "rights_of_others",
            DenialBasis::Unverifiable => "unverifiable",
            DenialBasis::Erased => "erased",
            DenialBasis::Other => "other",
        }
    }
}

/// `report`: one calendar year's figures, or its records as CSV.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ReportArgs {
    /// The calendar year the requests were received in, e.g. 2026.
    #[arg(long, value_parser = parse_year, value_name = "YYYY")]
    pub year: i32,
    /// Print the year's records of requests as CSV (for an auditor) instead of the figures.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

pub fn parse_year(value: &str) -> Result<i32, String> {
    let year = (value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| value.parse::<i32>().ok())
        .flatten()
        .filter(|y| (2000..=2999).contains(y));
    year.ok_or_else(|| "expected a year in four digits, e.g. 2026".into())
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct AttachArgs {
    #[arg(value_parser = parse_id)]
    pub id: Uuid,
    /// The manual source, by its id in the data map (e.g. website_analytics).
    #[arg(long, value_parser = parse_source, value_name = "SOURCE")]
    pub source: String,
    /// The files to attach: csv, json, pdf, txt, png, jpg, zip or xlsx, each at most 50 MiB.
    #[arg(value_name = "FILE", required_unless_present = "nothing_found", conflicts_with = "nothing_found")]
    pub files: Vec<PathBuf>,
    /// The source holds nothing of the person.
    #[arg(long)]
    pub nothing_found: bool,
}

#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    /// Only requests in this status [default: every open one].
    #[arg(long)]
    pub status: Option<OpenStatus>,
    /// Only requests due on or before this date, YYYY-MM-DD.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub due_before: Option<NaiveDate>,
    /// Requests per page, 1 to 100 [server default: 50].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100), value_name = "N")]
    pub limit: Option<u8>,
    /// Start at this page (the `next_cursor` of a previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow the pages to the end.
    #[arg(long)]
    pub all: bool,
}

/// The statuses of an open request, the only ones the list filters on.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum OpenStatus {
    PendingVerification,
    Verified,
    InProgress,
}

impl OpenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpenStatus::PendingVerification => "pending_verification",
            OpenStatus::Verified => "verified",
            OpenStatus::InProgress => "in_progress",
        }
    }
}

pub fn parse_id(value: &str) -> Result<Uuid, String> {
    // Only the hyphenated form: that is how ids appear in emails, lists and the audit trail.
    if value.len() != 36 {
        return Err("expected a request id like 3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52".into());
    }
    Uuid::parse_str(value)
        .map_err(|_| "expected a request id like 3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52".to_string())
}

/// A data map id: lower-case letters, digits and `_`.
pub fn parse_source(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(value.to_string())
    } else {
        Err("expected a source id of the data map, like website_analytics".into())
    }
}

pub fn parse_date(value: &str) -> Result<NaiveDate, String> {
    let shaped = value.len() == 10
        && value.char_indices().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() });
    if !shaped {
        return Err("expected a date as YYYY-MM-DD, e.g. 2027-02-26".into());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| format!("{value} is not a calendar date"))
}

/// Reasons and notes reach the requester or the audit trail; blank ones say nothing.
pub fn parse_text(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(trimmed.to_string())
}

pub fn parse_amount(value: &str) -> Result<String, String> {
    let valid = match value.split_once('.') {
        Some((units, cents)) => {
            !units.is_empty()
                && units.bytes().all(|b| b.is_ascii_digit())
                && cents.len() == 2
                && cents.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    if valid {
        Ok(value.to_string())
    } else {
        Err("expected an amount with exactly two decimals, e.g. 25.00".into())
    }
}

pub fn parse_currency(value: &str) -> Result<String, String> {
    let upper = value.to_ascii_uppercase();
    if upper.len() == 3 && upper.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(upper)
    } else {
        Err("expected a three-letter currency code, e.g. EUR".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_of_a_year_in_four_digits_as_a_table_or_as_csv() {
        let parse = |line: &str| Cli::try_parse_from(line.split(' '));
        let base = "staff --endpoint http://x report";
        let Command::Report(args) = parse(&format!("{base} --year 2026")).unwrap().command else {
            panic!("not report")
        };
        assert_eq!(args, ReportArgs { year: 2026, csv: false });
        let Command::Report(args) = parse(&format!("{base} --year 2026 --csv")).unwrap().command else {
            panic!("not report")
        };
        assert!(args.csv);
        for bad in ["--year 26", "--year 1999", "--year twenty", "", "--year 2026 --csv --json"] {
            assert!(parse(format!("{base} {bad}").trim_end()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_denial_may_name_its_basis_by_its_code() {
        let parse = |line: &str| Cli::try_parse_from(line.split(' '));
        let id = "3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52";
        let line = format!("staff --endpoint http://x deny {id} --reason No --basis legal_obligation");
        let Command::Deny { basis, .. } = parse(&line).unwrap().command else { panic!("not deny") };
        assert_eq!(basis.map(DenialBasis::as_str), Some("legal_obligation"));
        assert!(parse(&line.replace("legal_obligation", "because")).is_err());
    }

    #[test]
    fn what_follows_by_hand_is_checked_before_anything_is_sent() {
        let parse = |line: &str| Cli::try_parse_from(line.split(' '));
        let id = "3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52";
        let base = "staff --endpoint http://x";
        assert!(parse(&format!("{base} confirm-receipt {id}")).is_ok());
        let Command::AcceptFee { accepted_on, .. } =
            parse(&format!("{base} accept-fee {id} --accepted-on 2026-12-01")).unwrap().command
        else {
            panic!("not accept-fee")
        };
        assert_eq!(accepted_on, NaiveDate::from_ymd_opt(2026, 12, 1));
        assert!(parse(&format!("{base} accept-fee {id}")).is_ok(), "today by default");
        assert!(parse(&format!("{base} record-dispute {id}")).is_ok(), "a statement is optional");
        assert!(parse(&format!("{base} lift-restriction {id} --on 2026-12-24 --reason Checked")).is_ok());
        for bad in [
            format!("accept-fee {id} --accepted-on 1-12-2026"),
            format!("lift-restriction {id} --on 2026-12-24"),
            format!("lift-restriction {id} --reason Checked"),
            "confirm-receipt not-an-id".to_owned(),
        ] {
            assert!(parse(&format!("{base} {bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_help_of_every_free_text_says_the_requester_reads_it_in_their_language() {
        use clap::CommandFactory;
        let cli = Cli::command();
        for (command, arg) in [
            ("deny", "reason"),
            ("extend", "reason"),
            ("excessive", "reason"),
            ("complete", "note"),
            ("lift-restriction", "reason"),
        ] {
            let sub = cli.find_subcommand(command).unwrap();
            let help =
                sub.get_arguments().find(|a| a.get_id() == arg).unwrap().get_help().unwrap().to_string();
            assert!(help.contains("verbatim") && help.contains("request's language"), "{command}: {help}");
        }
    }

    #[test]
    fn ids_must_be_hyphenated_uuids() {
        assert!(parse_id("3f2b8c1e-5d4a-4b7e-9c21-7a1e0d9f6b52").is_ok());
        assert!(parse_id("3f2b8c1e5d4a4b7e9c217a1e0d9f6b52").is_err());
        assert!(parse_id("not-an-id").is_err());
    }

    #[test]
    fn dates_must_be_real_calendar_days_written_in_full() {
        assert_eq!(parse_date("2027-02-26"), Ok(NaiveDate::from_ymd_opt(2027, 2, 26).unwrap()));
        assert!(parse_date("2027-2-26").is_err());
        assert!(parse_date("2027-02-30").unwrap_err().contains("not a calendar date"));
        assert!(parse_date("26-02-2027").is_err());
    }

    #[test]
    fn amounts_need_exactly_two_decimals() {
        assert_eq!(parse_amount("25.00"), Ok("25.00".into()));
        assert_eq!(parse_amount("0.50"), Ok("0.50".into()));
        for bad in ["25", "25.0", "25.000", "-1.00", ".50", "2a.00", "25,00"] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_are_three_letters_and_upper_cased() {
        assert_eq!(parse_currency("EUR"), Ok("EUR".into()));
        assert_eq!(parse_currency("usd"), Ok("USD".into()));
        for bad in ["EU", "EURO", "E1R", ""] {
            assert!(parse_currency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_are_data_map_ids() {
        assert_eq!(parse_source("website_analytics"), Ok("website_analytics".into()));
        for bad in ["", "Website", "web-analytics", "a/b", "../x"] {
            assert!(parse_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_is_entered_with_its_channel_and_the_persons_address_kind_and_region() {
        let parse = |line: &str| Cli::try_parse_from(line.split(' '));
        let base = "staff --endpoint http://x submit";
        let cli = parse(&format!(
            "{base} --channel in_person --email a@b.nl --kind deletion --region NL --name Ann"
        ));
        let Command::Submit(args) = cli.unwrap().command else { panic!("not submit") };
        assert_eq!(
            (args.channel, args.name.as_deref(), args.language),
            (Channel::InPerson, Some("Ann"), None)
        );
        let full = "--channel phone --email a@b.nl --kind access --region NL";
        assert!(parse(&format!("{base} {full}")).is_ok());
        for missing in ["--channel phone", "--email a@b.nl", "--kind access", "--region NL"] {
            let without = full.replace(missing, "").split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(parse(&format!("{base} {without}")).is_err(), "{missing} is required");
        }
        let web = full.replace("phone", "web");
        assert!(parse(&format!("{base} {web}")).is_err(), "a request made online is not entered by staff");
    }

    #[test]
    fn blank_reasons_are_refused_and_others_trimmed() {
        assert!(parse_text("   ").is_err());
        assert_eq!(parse_text("  identity unclear "), Ok("identity unclear".into()));
    }
}
