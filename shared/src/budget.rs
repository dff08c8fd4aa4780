//! Mail budgets: how much mail a submission may cause, counted so that sub-addresses, many
//! addresses of one domain and many addresses from one network do not get around the limit.
//!
//! A submission charges, narrowest first, the budget of its mailbox (the address as the provider
//! delivers it: `a.b+tag@gmail.com` is `ab@gmail.com`), of its registrable domain, of the client
//! network it came from (an IPv4 /24 or an IPv6 /56), and the overall one. When one is spent the
//! API answers as usual and nothing is sent. Every key is stored as a hash: the counters hold no
//! address and no IP address.

use sha2::{Digest, Sha256};
use std::net::IpAddr;

use crate::domain::EmailAddress;

/// Which budget a charge is against (the metric's dimension when one is spent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetScope {
    Mailbox,
    Domain,
    Network,
    Overall,
}

impl BudgetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Mailbox => "mailbox",
            BudgetScope::Domain => "domain",
            BudgetScope::Network => "network",
            BudgetScope::Overall => "overall",
        }
    }
}

/// One counter to charge: its scope, its hashed key and how many mails it allows per window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetCharge {
    pub scope: BudgetScope,
    /// Hex SHA-256 of the scope and the normalised key.
    pub key: String,
    pub limit: u32,
}

/// The limits, per window (an hour by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailBudgets {
    pub per_mailbox: u32,
    pub per_domain: u32,
    pub per_network: u32,
    pub overall: u32,
}

impl Default for MailBudgets {
    fn default() -> Self {
        MailBudgets { per_mailbox: 3, per_domain: 100, per_network: 20, overall: 500 }
    }
}

impl MailBudgets {
    /// The counters one mail to `email`, asked for from `network`, is charged to, narrowest
    /// first. Without a known network (a test, a direct invocation) that budget is left out.
    pub fn charges(&self, email: &EmailAddress, network: Option<IpAddr>) -> Vec<BudgetCharge> {
        let (mailbox, domain) = mailbox_and_domain(email.normalized());
        let mut charges = vec![
            charge(BudgetScope::Mailbox, &mailbox, self.per_mailbox),
            charge(BudgetScope::Domain, &registrable_domain(&domain), self.per_domain),
        ];
        if let Some(ip) = network {
            charges.push(charge(BudgetScope::Network, &network_prefix(ip), self.per_network));
        }
        charges.push(charge(BudgetScope::Overall, "all", self.overall));
        charges
    }
}

fn charge(scope: BudgetScope, key: &str, limit: u32) -> BudgetCharge {
    let digest = Sha256::digest(format!("budget:{}:{key}", scope.as_str()).as_bytes());
    BudgetCharge { scope, key: hex::encode(digest), limit }
}

/// The mailbox the provider delivers to and the domain, from a lower-cased address. Sub-address
/// tags (`+tag`) go for every domain: the major providers all deliver them to the base mailbox,
/// and over-counting a domain that does not costs one address a little of its own budget. Dots
/// go where the provider ignores them (Gmail).
pub fn mailbox_and_domain(normalized: &str) -> (String, String) {
    let (local, domain) = normalized.rsplit_once('@').unwrap_or((normalized, ""));
    let domain = match domain {
        "googlemail.com" => "gmail.com",
        other => other,
    };
    let base = local.split('+').next().unwrap_or(local);
    let base = if domain == "gmail.com" { base.replace('.', "") } else { base.to_owned() };
    (format!("{base}@{domain}"), domain.to_owned())
}

/// The domain a person can register (`mail.example.co.uk` -> `example.co.uk`), so that endless
/// subdomains of one domain share its budget.
fn registrable_domain(domain: &str) -> String {
    psl::domain_str(domain).unwrap_or(domain).to_owned()
}

/// The client's network: the /24 of an IPv4 address, the /56 of an IPv6 one (what one customer
/// line is usually given).
fn network_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_prefix(IpAddr::V4(v4)),
            None => {
                let segments = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}00::/56", segments[0], segments[1], segments[2], segments[3] >> 8)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn key_of(address: &str, scope: BudgetScope, network: Option<IpAddr>) -> String {
        let charges = MailBudgets::default().charges(&email(address), network);
        charges.into_iter().find(|c| c.scope == scope).unwrap().key
    }

    #[test]
    fn gmail_dots_tags_and_googlemail_are_one_mailbox() {
        let one = key_of("jan.jansen@gmail.com", BudgetScope::Mailbox, None);
        for variant in ["JanJansen+x@gmail.com", "j.a.n.jansen+promo@googlemail.com", "janjansen@gmail.com"] {
            assert_eq!(key_of(variant, BudgetScope::Mailbox, None), one, "{variant}");
        }
        assert_ne!(key_of("jan.jansen2@gmail.com", BudgetScope::Mailbox, None), one);
    }

    #[test]
    fn tags_go_everywhere_but_dots_matter_outside_gmail() {
        assert_eq!(mailbox_and_domain("jan+a@example.com"), ("jan@example.com".into(), "example.com".into()));
        assert_eq!(mailbox_and_domain("j.an@example.com").0, "j.an@example.com");
    }

    #[test]
    fn subdomains_share_their_registrable_domains_budget() {
        let base = key_of("a@example.co.uk", BudgetScope::Domain, None);
        assert_eq!(key_of("b@mail.example.co.uk", BudgetScope::Domain, None), base);
        assert_eq!(key_of("c@x.y.example.co.uk", BudgetScope::Domain, None), base);
        assert_ne!(key_of("a@other.co.uk", BudgetScope::Domain, None), base);
    }

    #[test]
    fn one_network_is_a_v4_slash_24_or_a_v6_slash_56() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let net = |s: &str| key_of("a@example.com", BudgetScope::Network, ip(s));
        assert_eq!(net("203.0.113.7"), net("203.0.113.250"));
        assert_ne!(net("203.0.113.7"), net("203.0.114.7"));
        assert_eq!(net("::ffff:203.0.113.9"), net("203.0.113.7"));
        assert_eq!(net("2001:db8:1:2300::1"), net("2001:db8:1:23ff:ffff::9"));
        assert_ne!(net("2001:db8:1:2300::1"), net("2001:db8:1:2400::1"));
    }

    #[test]
    fn charges_go_narrowest_first_and_hold_no_address() {
        let ip = "198.51.100.4".parse().ok();
        let charges = MailBudgets::default().charges(&email("Jan@Example.com"), ip);
        let scopes: Vec<_> = charges.iter().map(|c| c.scope).collect();
        assert_eq!(
            scopes,
            [BudgetScope::Mailbox, BudgetScope::Domain, BudgetScope::Network, BudgetScope::Overall]
        );
        let all = format!("{charges:?}");
        for plain in ["jan", "example", "198.51"] {
            assert!(!all.contains(plain), "{plain} in {all}");
        }
        let without = MailBudgets::default().charges(&email("jan@example.com"), None);
        assert!(without.iter().all(|c| c.scope != BudgetScope::Network));
    }
}
