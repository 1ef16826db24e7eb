//! Two saved run reports side by side: the network that works beside the one
//! that fails, or one client beside another. This module owns the comparison
//! as a pure function of the two stored documents (no live state, no I/O):
//! reading them as far as their schema allows ([`side`]), what each says
//! ([`facts`]), the ClientHello differences ([`hello`]), the ranked
//! explanation ([`explain`]), the full table ([`table`]), the one view model
//! [`Comparison`] that feeds JSON, text ([`text`]) and HTML ([`html`]). The
//! routes (`/compare/{a}/{b}`, `/api/v1/compare/{a}/{b}`) and who may see a
//! comparison are `web`'s.
//!
//! # JSON (`schema_version` 1)
//!
//! ```text
//! { "schema_version": 1,
//!   "headline": "A fails and B works: same client, the network differs.",
//!   "client": "same" | "different" | "unknown", "network": (the same),
//!   "a": { "id", "standing": "working" | "failing" | "undecided", "name",
//!          "schema_version", "created_at", "label", "agent", "status",
//!          "verdict", "client_address", "missing": [...] },
//!   "b": { ... },
//!   "explanation": [ { "id", "weight", "text" } ],
//!   "sections": [ { "id", "title",
//!                   "rows": [ { "label", "a", "b", "differs", "note"? } ] } ] }
//! ```
//!
//! Documented field by field in `docs/api.md`; the ranking in
//! `docs/compare.md`. Bump [`COMPARE_SCHEMA_VERSION`] when a field changes
//! meaning or disappears.

pub mod explain;
pub mod facts;
pub mod hello;
pub mod html;
pub mod side;
pub mod table;
pub mod text;

pub use explain::{Reason, Sameness};
pub use facts::Standing;
pub use side::{ReadError, Side};
pub use table::{Row, Section};

use serde::Serialize;

use crate::diagnose::Status;
use crate::metrics::asn::AsTable;

pub const COMPARE_SCHEMA_VERSION: u32 = 1;

/// One side as the comparison names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideSummary {
    pub id: String,
    pub standing: Standing,
    /// What the explanation calls it: "the failing network", "A".
    pub name: String,
    /// The schema it was saved under (`null` when it does not say).
    pub schema_version: Option<u32>,
    pub created_at: Option<String>,
    pub label: Option<String>,
    pub agent: Option<String>,
    pub status: Option<Status>,
    pub verdict: Option<String>,
    pub client_address: Option<String>,
    /// What this report lacks that a current one carries, in words.
    pub missing: Vec<String>,
}

/// Two reports compared: the view model every format is rendered from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub schema_version: u32,
    /// One line: which side works, and whether the client or the network
    /// differs.
    pub headline: String,
    /// Whether both runs came from the same client software.
    pub client: Sameness,
    /// Whether both came from the same network and met the same path.
    pub network: Sameness,
    pub a: SideSummary,
    pub b: SideSummary,
    /// The differences that explain the most, heaviest first (at most
    /// [`explain::MAX_REASONS`]).
    pub explanation: Vec<Reason>,
    /// The full table.
    pub sections: Vec<Section>,
}

/// Compares report `a` with report `b` (in that order: A is the first id of
/// the URL). `networks` names source networks by AS when the operator has a
/// table (`--asn-db`), else by /24 or /48.
pub fn compare(a: &Side, b: &Side, networks: Option<&AsTable>) -> Comparison {
    let pair = explain::Pair::new(
        facts::Facts::of(a, b, networks),
        facts::Facts::of(b, a, networks),
    );
    let mut explanation = pair.reasons();
    explanation.truncate(explain::MAX_REASONS);
    let summary = |f: &facts::Facts<'_>| SideSummary {
        id: f.side.id.clone(),
        standing: f.standing,
        name: pair.name(f),
        schema_version: f.side.schema_version,
        created_at: f.side.created_at.clone(),
        label: f.side.label.clone(),
        agent: f.side.agent.clone(),
        status: f.side.status,
        verdict: f.side.verdict.clone(),
        client_address: f.side.client_address.clone(),
        missing: f.side.missing.clone(),
    };
    Comparison {
        schema_version: COMPARE_SCHEMA_VERSION,
        headline: headline(&pair),
        client: pair.client,
        network: pair.network,
        a: summary(&pair.a),
        b: summary(&pair.b),
        explanation,
        sections: table::sections(&pair),
    }
}

fn headline(p: &explain::Pair<'_>) -> String {
    let standing = match (p.a.standing, p.b.standing) {
        (Standing::Failing, _) => "A fails and B works",
        (Standing::Working, _) => "A works and B fails",
        _ => match (p.a.side.status, p.b.side.status) {
            (Some(Status::Problem), Some(Status::Problem)) => "Both runs found a problem",
            (Some(_), Some(_)) => "Neither run found a problem",
            _ => "Two runs",
        },
    };
    use Sameness::{Different, Same, Unknown};
    let what = match (p.client, p.network) {
        (Same, Different) => "same client, the network differs",
        (Same, Same) => "same client on the same network",
        (Same, Unknown) => "same client",
        (Different, Same) => "same network, the clients differ",
        (Different, Different) => "both the client and the network differ",
        (Different, Unknown) => "the clients differ",
        (Unknown, Same) => "same network",
        (Unknown, Different) => "the networks differ",
        (Unknown, Unknown) => "",
    };
    if what.is_empty() {
        format!("{standing}.")
    } else {
        format!("{standing}: {what}.")
    }
}

#[cfg(test)]
mod tests;
