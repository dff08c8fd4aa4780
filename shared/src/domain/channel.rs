//! How a request reached us: online (the privacy center's form or the public API), or entered by
//! a staff member who took it by phone, post, chat, email or in person. Kept on the request, in
//! its audit trail and in its de-identified record (CCPA regulations §7101 ask for the channel).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a staff-entered request was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineChannel {
    Phone,
    Post,
    Email,
    Chat,
    InPerson,
}

impl OfflineChannel {
    pub const ALL: [OfflineChannel; 5] = [
        OfflineChannel::Phone,
        OfflineChannel::Post,
        OfflineChannel::Email,
        OfflineChannel::Chat,
        OfflineChannel::InPerson,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OfflineChannel::Phone => "phone",
            OfflineChannel::Post => "post",
            OfflineChannel::Email => "email",
            OfflineChannel::Chat => "chat",
            OfflineChannel::InPerson => "in_person",
        }
    }

    pub fn parse(name: &str) -> Option<OfflineChannel> {
        OfflineChannel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for OfflineChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the request was made. A staff-entered request names the staff member (their principal,
/// never the requester's data) who took it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intake {
    #[default]
    Web,
    Staff {
        channel: OfflineChannel,
        entered_by: String,
    },
}

impl Intake {
    /// The channel's name as records, reports and the audit trail show it.
    pub fn channel(&self) -> &'static str {
        match self {
            Intake::Web => "web",
            Intake::Staff { channel, .. } => channel.as_str(),
        }
    }

    pub fn is_web(&self) -> bool {
        matches!(self, Intake::Web)
    }

    /// Every channel name, web first.
    pub fn channel_names() -> impl Iterator<Item = &'static str> {
        std::iter::once("web").chain(OfflineChannel::ALL.into_iter().map(OfflineChannel::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offline_channel_parses_back_from_its_name() {
        for channel in OfflineChannel::ALL {
            assert_eq!(OfflineChannel::parse(channel.as_str()), Some(channel));
        }
        assert_eq!(OfflineChannel::parse("web"), None, "web is not entered by staff");
        assert_eq!(OfflineChannel::parse("Phone"), None);
    }

    #[test]
    fn a_staff_entered_request_keeps_its_channel_and_who_entered_it_through_serde() {
        let intake =
            Intake::Staff { channel: OfflineChannel::InPerson, entered_by: "arn:aws:iam::1:user/kim".into() };
        let json = serde_json::to_value(&intake).unwrap();
        assert_eq!(json["staff"]["channel"], "in_person");
        assert_eq!(serde_json::from_value::<Intake>(json).unwrap(), intake);
        assert_eq!(serde_json::to_value(Intake::Web).unwrap(), "web");
        assert_eq!(intake.channel(), "in_person");
    }
}
