//! The fixed, bounded set of outcome classes attempts are counted by, mapped
//! from the attempt model ([`Outcome`]). Label values never come from a peer:
//! every class and alert label is a `&'static str` chosen here.

use crate::attempt::Outcome;
use crate::hello::wire::AlertDescription;

/// How an attempt ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutcomeClass {
    Completed,
    HelloIncomplete,
    NoData,
    NotTls,
    Malformed,
    Version,
    Cipher,
    Group,
    Signature,
    Alpn,
    Alert,
    Closed,
    Reset,
    Timeout,
    Other,
}

impl OutcomeClass {
    /// How many classes there are: the bound on `outcome` label values.
    pub const COUNT: usize = 15;

    /// Every class, in label order.
    pub const ALL: [OutcomeClass; Self::COUNT] = [
        Self::Completed,
        Self::HelloIncomplete,
        Self::NoData,
        Self::NotTls,
        Self::Malformed,
        Self::Version,
        Self::Cipher,
        Self::Group,
        Self::Signature,
        Self::Alpn,
        Self::Alert,
        Self::Closed,
        Self::Reset,
        Self::Timeout,
        Self::Other,
    ];

    /// The class of an outcome. Exhaustive on purpose: a new outcome must be
    /// given a class here before the crate builds.
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Completed => Self::Completed,
            Outcome::NoData { .. } => Self::NoData,
            Outcome::HelloIncomplete { .. } => Self::HelloIncomplete,
            Outcome::NotTls { .. } => Self::NotTls,
            Outcome::Malformed { .. } => Self::Malformed,
            Outcome::VersionTooOld { .. } => Self::Version,
            Outcome::NoSharedCipher => Self::Cipher,
            Outcome::NoSharedGroup => Self::Group,
            Outcome::NoSharedSignatureScheme => Self::Signature,
            Outcome::NoApplicationProtocol { .. } => Self::Alpn,
            Outcome::ClientAlert { .. } => Self::Alert,
            Outcome::ClosedMidHandshake => Self::Closed,
            Outcome::ResetMidHandshake => Self::Reset,
            Outcome::HandshakeTimeout => Self::Timeout,
            Outcome::OtherError { .. } => Self::Other,
        }
    }

    /// Position in [`Self::ALL`]: an index into per-class counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::HelloIncomplete => "hello_incomplete",
            Self::NoData => "no_data",
            Self::NotTls => "not_tls",
            Self::Malformed => "malformed",
            Self::Version => "version",
            Self::Cipher => "cipher",
            Self::Group => "group",
            Self::Signature => "signature",
            Self::Alpn => "alpn",
            Self::Alert => "alert",
            Self::Closed => "closed",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Other => "other",
        }
    }
}

/// The `alert` label value: the IANA name, or `unknown` for an unregistered
/// code (256 possible codes map onto at most 36 values).
pub fn alert_label(alert: AlertDescription) -> &'static str {
    alert.name().unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::StallEnd;

    #[test]
    fn indexes_follow_the_list_and_labels_are_distinct() {
        for (i, class) in OutcomeClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
        let mut labels: Vec<_> = OutcomeClass::ALL.iter().map(|c| c.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), OutcomeClass::COUNT);
    }

    #[test]
    fn outcomes_map_to_their_class() {
        let stall = Outcome::HelloIncomplete {
            received: 1460,
            expected: Some(1547),
            ended: StallEnd::Timeout,
            out_of_order_segments: 0,
        };
        assert_eq!(OutcomeClass::of(&stall), OutcomeClass::HelloIncomplete);
        assert_eq!(
            OutcomeClass::of(&Outcome::NoData {
                ended: StallEnd::Reset
            }),
            OutcomeClass::NoData
        );
        assert_eq!(
            OutcomeClass::of(&Outcome::ClientAlert {
                alert: AlertDescription::UNKNOWN_CA
            }),
            OutcomeClass::Alert
        );
        assert_eq!(
            OutcomeClass::of(&Outcome::ResetMidHandshake),
            OutcomeClass::Reset
        );
        let alpn = Outcome::NoApplicationProtocol {
            offered: vec!["foo".into()],
            supported: vec!["h2".into()],
        };
        assert_eq!(OutcomeClass::of(&alpn), OutcomeClass::Alpn);
        assert_eq!(OutcomeClass::Alpn.label(), "alpn");
    }

    #[test]
    fn unregistered_alerts_share_one_label() {
        assert_eq!(alert_label(AlertDescription(48)), "unknown_ca");
        assert_eq!(alert_label(AlertDescription(200)), "unknown");
        assert_eq!(alert_label(AlertDescription(201)), "unknown");
    }
}
